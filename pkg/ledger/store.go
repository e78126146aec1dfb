package ledger

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// Store is where the caches' ledgers live, and the one way to them: the
// ImageCache controller reads and records a cache's ledger through it, the
// node-warming controller and kubectl fledged read it through it. Today a
// ledger lives in its cache's status (status.ledger), written with the rest
// of the status; a store elsewhere changes this type, not its callers.
type Store struct{}

// Load decodes a cache's ledger, to change it (a damaged or newer one
// reads as empty: Decode).
func (Store) Load(ic *v1alpha2.ImageCache) *Ledger { return Decode(ic.Status.Ledger) }

// Read reads a cache's ledger in place, as recorded.
func (Store) Read(ic *v1alpha2.ImageCache) Reader { return NewReader(ic.Status.Ledger) }

// Nodes opens a cache's ledger to read one node at a time; a ledger in a
// newer format is refused (NewerFormatError).
func (Store) Nodes(ic *v1alpha2.ImageCache) (*NodeReader, error) {
	return NewNodeReader(ic.Status.Ledger)
}

// NodeStates reads the states a cache's ledger holds for one node, if they
// were recorded on this node (not an earlier one of the same name).
func (Store) NodeStates(ic *v1alpha2.ImageCache, n *corev1.Node) map[string]State {
	return NodeStates(ic.Status.Ledger, n)
}

// HoldsPins says whether a cache's ledger records pins.
func (Store) HoldsPins(ic *v1alpha2.ImageCache) bool {
	return ic.Status.Ledger != nil && len(ic.Status.Ledger.Pins) > 0
}

// Changed says whether recording l for a cache would change what is
// recorded.
func (Store) Changed(ic *v1alpha2.ImageCache, l *Ledger) bool {
	return !equality.Semantic.DeepEqual(ic.Status.Ledger, l.Encode())
}

// Record puts l where it lives for the status st about to be written.
func (Store) Record(st *v1alpha2.ImageCacheStatus, l *Ledger) { st.Ledger = l.Encode() }
