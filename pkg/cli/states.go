package cli

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/plan"
)

// The states of a (node, image) pair as the plugin prints them. In a purge,
// the ledger's pulled and present read as removed and kept.
const (
	statePulled  = "pulled"
	statePresent = "present"
	stateFailed  = "failed"
	statePending = "pending"
	stateSkipped = "skipped"
	stateRemoved = "removed"
	stateKept    = "kept"
	// Filters of --state beyond the states: the images the cache's own
	// pull brought onto the node, and those it pinned there.
	filterOwned  = "owned"
	filterPinned = "pinned"
)

// stateFilters are the values of --state that its help lists; a purge's
// removed and kept (purgeStates) are taken too.
var (
	stateFilters = []string{statePulled, statePresent, stateFailed, statePending, stateSkipped, filterOwned, filterPinned}
	purgeStates  = []string{stateRemoved, stateKept}
)

// pairView is one image's state on one node.
type pairView struct {
	Image   string `json:"image"`
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Owned: the cache's own pull brought the image onto the node.
	Owned bool `json:"owned,omitempty"`
	// Pin is "pinned", or "refused" or "unsure" (a pin that may be set,
	// held until an unpin takes it away) with PinReason, for a pinning
	// cache.
	Pin       string `json:"pin,omitempty"`
	PinReason string `json:"pinReason,omitempty"`
}

// matches says whether the pair passes a --state filter.
func (p *pairView) matches(filter string) bool {
	switch filter {
	case "":
		return true
	case filterOwned:
		return p.Owned
	case filterPinned:
		return p.Pin == "pinned"
	case statePulled:
		return p.State == statePulled || p.State == stateRemoved
	case statePresent:
		return p.State == statePresent || p.State == stateKept
	}
	return p.State == filter
}

// statusIndex finds a pair's entry in the status's capped lists.
type statusIndex struct {
	failures map[string]map[string]v1alpha2.NodeReasonMessage // image -> node
	unpinned map[string]map[string]v1alpha2.NodeReasonMessage
	omitted  map[string]int32
	purge    bool
}

func newStatusIndex(ic *v1alpha2.ImageCache) *statusIndex {
	return &statusIndex{failures: indexLists(ic.Status.Failures), unpinned: indexLists(ic.Status.Unpinned),
		omitted: ic.Status.OmittedFailures, purge: ic.Status.Reason == v1alpha2.ImageCacheReasonPurge}
}

func indexLists(lists map[string]v1alpha2.NodeReasonMessageList) map[string]map[string]v1alpha2.NodeReasonMessage {
	out := make(map[string]map[string]v1alpha2.NodeReasonMessage, len(lists))
	for img, list := range lists {
		m := make(map[string]v1alpha2.NodeReasonMessage, len(list))
		for _, nrm := range list {
			m[nrm.Node] = nrm
		}
		out[img] = m
	}
	return out
}

// pairOf is the view of one wanted image on a node from the ledger's record
// of the node and the status's lists.
func (x *statusIndex) pairOf(node string, w plan.Wanted, rec *ledger.NodeRecord, skip string) pairView {
	p := pairView{Image: w.Image, Owned: rec.Owned[w.Key]}
	switch rec.States[w.Key] {
	case ledger.Pulled:
		p.State = statePulled
		if x.purge {
			p.State = stateRemoved
		}
	case ledger.Present:
		p.State = statePresent
		if x.purge {
			p.State = stateKept
		}
	case ledger.Failed:
		p.State = stateFailed
		if f, ok := x.failures[w.Image][node]; ok {
			p.Reason, p.Message = f.Reason, f.Message
		} else if x.omitted[w.Image] > 0 {
			p.Reason = "NotListed"
			p.Message = "left out of status.failures to keep the object small (status.omittedFailures)"
		}
	default:
		p.State = statePending
		if skip != "" {
			p.State, p.Reason = stateSkipped, skip
			if plan.NeverPulls(skip) {
				p.Message = "the pulls never run on this node's platform"
			}
		}
	}
	switch s := rec.Pins[w.Key]; s {
	case ledger.Pinned:
		p.Pin = "pinned"
	case ledger.PinUnsure, ledger.PinRefused:
		// Unsure: a pin that may be set, the cache's until an unpin
		// takes it away.
		p.Pin = s.String()
		if u, ok := x.unpinned[w.Image][node]; ok {
			p.PinReason = u.Reason
		}
	}
	return p
}

// nodeView is what a cache wants on one node, and how far it got.
type nodeView struct {
	Node string `json:"node"`
	// State sums the images up: failed if any failed, else pending, else
	// skipped, else warm (every image pulled or present; in a purge, done).
	State      string     `json:"state"`
	SkipReason string     `json:"skipReason,omitempty"`
	Images     []pairView `json:"images"`
}

// viewOf is a node's view from its selection and ledger record.
func (x *statusIndex) viewOf(node string, sel plan.Selection, rec *ledger.NodeRecord) nodeView {
	v := nodeView{Node: node, SkipReason: sel.Skip, Images: make([]pairView, 0, len(sel.Wanted)+len(sel.Invalid))}
	for _, w := range sel.Wanted {
		v.Images = append(v.Images, x.pairOf(node, w, rec, sel.Skip))
	}
	for _, img := range sortedKeys(sel.Invalid) {
		v.Images = append(v.Images, pairView{Image: img, State: stateFailed, Reason: "InvalidImageName", Message: sel.Invalid[img]})
	}
	v.State = summary(v.Images, x.purge)
	return v
}

// summary is a node's state from its images'.
func summary(pairs []pairView, purge bool) string {
	has := func(state string) bool {
		return slices.ContainsFunc(pairs, func(p pairView) bool { return p.State == state })
	}
	switch {
	case has(stateFailed):
		return stateFailed
	case has(statePending):
		return statePending
	case has(stateSkipped):
		return stateSkipped
	case purge:
		return "done"
	}
	return "warm"
}

// counts counts a node's images by state.
func counts(pairs []pairView) map[string]int {
	out := map[string]int{}
	for _, p := range pairs {
		out[p.State]++
	}
	return out
}

// notDone says, briefly, which images are not done and why.
func notDone(pairs []pairView, max int) string {
	var parts []string
	n := 0
	for _, p := range pairs {
		if p.State != stateFailed && p.State != statePending && p.State != stateSkipped {
			continue
		}
		n++
		if len(parts) < max {
			s := p.Image + " " + p.State
			if p.Reason != "" && p.State != stateSkipped {
				s += " (" + p.Reason + ")"
			}
			parts = append(parts, s)
		}
	}
	if n > len(parts) {
		parts = append(parts, fmt.Sprintf("and %d more", n-len(parts)))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
