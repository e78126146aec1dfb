package ledger

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// A cache's ledger lives in two places: status.ledger holds its header (the
// format, the epoch and the removal time) and the cache's ImageCacheSlices
// hold its entries, each slice those of a bounded number of nodes, in the
// encoding status.ledger had in format 1, with the epoch its states belong
// to. Open reads them back together; PlanSlices says what to write.

// Header is what status.ledger records of a ledger kept in slices.
func (l *Ledger) Header() *v1alpha2.PullLedger {
	return &v1alpha2.PullLedger{Format: FormatVersion, Epoch: l.Epoch, RemovedAt: l.RemovedAt}
}

// Clone returns a copy of the ledger that shares nothing with it.
func (l *Ledger) Clone() *Ledger { return l.Part(l.nodes()) }

// sliceBudget is the most bytes of ledger one slice is sized for: well
// under the 1.5 MiB etcd takes in one request, with room for the slice's
// managed fields and metadata.
const sliceBudget = 768 << 10

// MaxNodesPerSlice is how many nodes one slice holds when the ledger's table
// has the given number of images and its longest node name the given
// length: v1alpha2.MaxSliceNodes, or fewer when that many entries, each
// owning and pinning every image, would pass sliceBudget. With the longest
// node names (253 characters) it is about 740 at 10 images, 400 at the
// 1,024 images a cache may hold (plan.MaxImages); with names of 60
// characters, 1,000 up to about 700 images.
func MaxNodesPerSlice(table, longestName int) int {
	name := string(make([]byte, longestName))
	one := func(yield func(string) bool) { yield(name) }
	none := func(func(string) bool) {}
	per := EstimateSize(one, none) - EstimateSize(none, none) + ((table+3)/4*4+2)/3 + ((table+7)/8*4+2)/3 +
		EstimatePinsSize(one, table)
	return max(1, min(v1alpha2.MaxSliceNodes, sliceBudget/per))
}

// tableLen counts the images the ledger's entries name.
func (l *Ledger) tableLen() int {
	seen := map[string]bool{}
	for _, m := range l.states {
		for img := range m {
			seen[img] = true
		}
	}
	for _, m := range l.owned {
		for img := range m {
			seen[img] = true
		}
	}
	for _, m := range l.pins {
		for img := range m {
			seen[img] = true
		}
	}
	return len(seen)
}

// SliceWrites is what recording a ledger writes to its slices: the slices to
// create or update, by name, with their new ledger, in the order to write
// them (those that take on nodes first: a crash in the middle leaves a node
// in two slices, which reads as sure as one, never in none), and the slices
// to delete once they are written.
type SliceWrites struct {
	Put    []SliceContent
	Delete []string
}

// SliceContent is the content of one slice.
type SliceContent struct {
	Name   string
	Nodes  int
	Ledger *v1alpha2.PullLedger
}

// PlanSlices says what recording the ledger writes, given the cache's
// slices as they are (name to ledger): Assign places the nodes, each slice
// whose part changed is written, each left with no node is deleted.
// newName names the slices it makes.
func PlanSlices(l *Ledger, current map[string]*v1alpha2.PullLedger, newName func(i int) string) SliceWrites {
	held := make(map[string][]string, len(current))
	for name, raw := range current {
		held[name] = rawNodes(raw)
	}
	nodes := l.nodes()
	longest := 0
	for _, n := range nodes {
		longest = max(longest, len(n))
	}
	assign := Assign(held, nodes, MaxNodesPerSlice(l.tableLen(), longest), newName)
	var grow, rest []SliceContent
	for _, name := range slices.Sorted(maps.Keys(assign)) {
		nodes := assign[name]
		enc := l.encodeNodes(nodes)
		enc.Format = FormatVersion
		raw, ok := current[name]
		if ok && equality.Semantic.DeepEqual(raw, enc) {
			continue
		}
		c := SliceContent{Name: name, Nodes: len(nodes), Ledger: enc}
		had := make(map[string]bool, len(held[name]))
		for _, n := range held[name] {
			had[n] = true
		}
		if !ok || slices.ContainsFunc(nodes, func(n string) bool { return !had[n] }) {
			grow = append(grow, c)
		} else {
			rest = append(rest, c)
		}
	}
	var gone []string
	for _, name := range slices.Sorted(maps.Keys(current)) {
		if _, ok := assign[name]; !ok {
			gone = append(gone, name)
		}
	}
	return SliceWrites{Put: append(grow, rest...), Delete: gone}
}

// rawNodes lists the nodes an encoded ledger has an entry or pins for.
func rawNodes(raw *v1alpha2.PullLedger) []string {
	if raw == nil {
		return nil
	}
	seen := make(map[string]bool, len(raw.Nodes)+len(raw.Pins))
	for n := range raw.Nodes {
		seen[n] = true
	}
	for n := range raw.Pins {
		seen[n] = true
	}
	return sortedKeys(seen)
}

// NewSlice makes a cache's slice of the given content: in its namespace,
// owned by it (it goes with the cache, once the cache's finalizer is gone),
// labelled with its name and UID.
func NewSlice(ic *v1alpha2.ImageCache, c SliceContent) *v1alpha2.ImageCacheSlice {
	return &v1alpha2.ImageCacheSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      c.Name,
			Namespace: ic.Namespace,
			Labels: map[string]string{
				v1alpha2.LabelSliceCache:    ic.Name,
				v1alpha2.LabelSliceCacheUID: string(ic.UID),
			},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ic,
				v1alpha2.SchemeGroupVersion.WithKind("ImageCache"))},
		},
		NodeCount: int32(c.Nodes),
		Ledger:    *c.Ledger,
	}
}

// SliceName names a cache's i-th new slice: the cache's name (cut to leave
// room), the start of its UID (a cache re-created under the same name does
// not meet the slices of the one before, which the garbage collector may
// not have removed yet) and i.
func SliceName(ic *v1alpha2.ImageCache, i int) string {
	name := ic.Name
	if len(name) > 200 {
		name = name[:200]
	}
	uid := string(ic.UID)
	if len(uid) > 8 {
		uid = uid[:8]
	}
	return fmt.Sprintf("%s-%s-%s", name, uid, strconv.Itoa(i))
}

// Open reads a cache's ledger back from its status and its slices: the
// header's epoch and removal time, with what each slice holds (Join: the
// states of a slice of another epoch are not the operation's; a node in two
// slices keeps only what both say). A ledger status.ledger still holds in
// format 1 (recorded by an earlier release) is read as one more part.
// Anyone with rights on them can write the slices, so reading them trusts
// nothing: a damaged entry means "pull again", never "pulled" or "owned".
func Open(header *v1alpha2.PullLedger, sliced []*v1alpha2.PullLedger) *Ledger {
	head := Decode(header)
	if len(sliced) == 0 {
		return head
	}
	parts := make([]*Ledger, 0, len(sliced)+1)
	if head.NodeCount() > 0 {
		parts = append(parts, head)
	}
	for _, raw := range sliced {
		parts = append(parts, Decode(raw))
	}
	return join(head.Epoch, head.RemovedAt, func(m map[string]State) map[string]State { return m }, parts)
}
