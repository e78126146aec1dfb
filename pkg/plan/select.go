package plan

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// Wanted is an image a cache wants on a node: as its spec spells it, and
// normalised.
type Wanted struct{ Image, Key string }

// Selection is what a cache's entries want on one node.
type Selection struct {
	// Wanted are the valid images, each once, in the order of their keys.
	Wanted []Wanted
	// Invalid maps each image of the selecting entries that the normaliser
	// refuses to its error: it counts as failed there.
	Invalid map[string]string
	// Skip is why the node cannot take a pull now, or "" (SkipReason);
	// NeverPulls(Skip): a platform the pulls never run on.
	Skip string
}

// SelectNodes works out what a cache wants on each of some nodes, whatever
// their state, for tools that report it node by node: a node no entry
// selects has no key.
func SelectNodes(ic *v1alpha2.ImageCache, nodes []*corev1.Node, filter NodeFilter) map[string]Selection {
	p := Compute(ic, nodes, filter, false)
	out := make(map[string]Selection, len(p.Nodes))
	for name, w := range p.Nodes {
		sel := Selection{Skip: w.Skip, Wanted: make([]Wanted, 0, len(w.Images))}
		for _, wi := range w.Images {
			sel.Wanted = append(sel.Wanted, Wanted{Image: wi.Image, Key: wi.Key})
		}
		out[name] = sel
	}
	for img, names := range p.InvalidNodes {
		for _, name := range names {
			sel := out[name]
			if sel.Invalid == nil {
				sel.Invalid = map[string]string{}
			}
			sel.Invalid[img] = p.Invalid[img]
			out[name] = sel
		}
	}
	return out
}

// WantsPulls says whether a cache's unsettled pulls count, for the startup
// taint, as pulls a node waits for: not while the cache is being deleted,
// purged, or refused as too large, as it pulls nothing then.
func WantsPulls(ic *v1alpha2.ImageCache) bool {
	return ic.DeletionTimestamp == nil && ic.Status.Reason != v1alpha2.ImageCacheReasonPurge && !RefusedTooLarge(ic)
}

// RefusedTooLarge says whether a cache was refused as too large for its
// status (the controller refuses one TooLarge): it pulls nothing until its spec changes.
func RefusedTooLarge(ic *v1alpha2.ImageCache) bool {
	ready := meta.FindStatusCondition(ic.Status.Conditions, v1alpha2.ConditionReady)
	return ready != nil && ready.Reason == reasons.TooLarge && ready.ObservedGeneration == ic.Generation
}

// HoldingPulls lists the images whose pulls hold a node's startup taint for
// one cache: sel is what the cache wants on the node (SelectNodes), states
// the node's states in its ledger. They are the wanted images not settled
// there yet; none while the cache wants no pulls (WantsPulls: it is being
// deleted, purged, or refused as too large), nor on a node whose platform
// never takes a pull. An invalid image holds nothing: it counts as failed.
// The node-warming controller releases the taint by it, and kubectl fledged
// says by it which pulls hold a node.
func HoldingPulls(ic *v1alpha2.ImageCache, sel Selection, states map[string]ledger.State) []Wanted {
	if !WantsPulls(ic) || NeverPulls(sel.Skip) {
		return nil
	}
	var out []Wanted
	for _, w := range sel.Wanted {
		if states[w.Key] == ledger.Unsettled {
			out = append(out, w)
		}
	}
	return out
}
