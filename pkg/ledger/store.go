package ledger

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// Store is where the caches' ledgers live, and the one way to them: the
// ImageCache controller reads a cache's ledger through it and records its
// header, the node-warming controller reads one node's states through it.
// A ledger's header is in its cache's status (status.ledger), its entries
// in the cache's ImageCacheSlices, read from an informer's cache. A nil
// Store knows no slices: it reads status.ledger alone.
type Store struct {
	slices cache.Indexer
}

// The indexes a Store adds to the slices' informer.
const (
	// indexCache indexes the slices by their cache's UID.
	indexCache = "kubefledged.io/imagecache-uid"
	// indexNode indexes the slices by the nodes they hold entries for.
	indexNode = "kubefledged.io/node"
)

// NewStore returns the store that reads the slices an informer holds, and
// adds its indexes to it (before the informer starts; another Store on the
// same informer shares them).
func NewStore(slices cache.SharedIndexInformer) (*Store, error) {
	want := cache.Indexers{indexCache: byCache, indexNode: byNode}
	for name := range slices.GetIndexer().GetIndexers() {
		delete(want, name)
	}
	if len(want) > 0 {
		if err := slices.AddIndexers(want); err != nil {
			return nil, fmt.Errorf("indexing the ImageCacheSlices: %w", err)
		}
	}
	return &Store{slices: slices.GetIndexer()}, nil
}

func byCache(obj any) ([]string, error) {
	sl, ok := obj.(*v1alpha2.ImageCacheSlice)
	if !ok || sl.Labels[v1alpha2.LabelSliceCacheUID] == "" {
		return nil, nil
	}
	return []string{sl.Labels[v1alpha2.LabelSliceCacheUID]}, nil
}

func byNode(obj any) ([]string, error) {
	sl, ok := obj.(*v1alpha2.ImageCacheSlice)
	if !ok {
		return nil, nil
	}
	return rawNodes(&sl.Ledger), nil
}

// Slices lists a cache's slices, as the informer shows them: those labelled
// with its UID, in its namespace.
func (s *Store) Slices(ic *v1alpha2.ImageCache) []*v1alpha2.ImageCacheSlice {
	if s == nil || s.slices == nil {
		return nil
	}
	objs, _ := s.slices.ByIndex(indexCache, string(ic.UID))
	out := make([]*v1alpha2.ImageCacheSlice, 0, len(objs))
	for _, obj := range objs {
		if sl, ok := obj.(*v1alpha2.ImageCacheSlice); ok && sl.Namespace == ic.Namespace {
			out = append(out, sl)
		}
	}
	return out
}

// Load reads a cache's ledger, to change it (Open).
func (s *Store) Load(ic *v1alpha2.ImageCache) *Ledger {
	return Open(ic.Status.Ledger, SliceLedgers(s.Slices(ic)))
}

// Open reads a cache's ledger, to change it, and a copy of it as recorded.
func (s *Store) Open(ic *v1alpha2.ImageCache) (*Ledger, Reader) {
	l := s.Load(ic)
	return l, ReaderOf(l.Clone())
}

// SliceLedgers returns the slices' ledgers.
func SliceLedgers(list []*v1alpha2.ImageCacheSlice) []*v1alpha2.PullLedger {
	out := make([]*v1alpha2.PullLedger, len(list))
	for i, sl := range list {
		out[i] = &sl.Ledger
	}
	return out
}

// NodeStates reads the states a cache's ledger holds for one node, if they
// were recorded on this node (not an earlier one of the same name) in the
// cache's current operation; a node two slices hold reads as having none.
func (s *Store) NodeStates(ic *v1alpha2.ImageCache, n *corev1.Node) map[string]State {
	var held []*v1alpha2.PullLedger
	if head := ic.Status.Ledger; head != nil && head.Nodes[n.Name] != "" {
		held = append(held, head)
	}
	if s != nil && s.slices != nil {
		objs, _ := s.slices.ByIndex(indexNode, n.Name)
		for _, obj := range objs {
			if sl, ok := obj.(*v1alpha2.ImageCacheSlice); ok && sl.Namespace == ic.Namespace &&
				sl.Labels[v1alpha2.LabelSliceCacheUID] == string(ic.UID) {
				held = append(held, &sl.Ledger)
			}
		}
	}
	if len(held) != 1 || ic.Status.Ledger == nil || held[0].Epoch != ic.Status.Ledger.Epoch {
		return nil
	}
	return NodeStates(held[0], n)
}

// HoldsPins says whether a cache's ledger records pins.
func (s *Store) HoldsPins(ic *v1alpha2.ImageCache) bool {
	if ic.Status.Ledger != nil && len(ic.Status.Ledger.Pins) > 0 {
		return true
	}
	for _, sl := range s.Slices(ic) {
		if len(sl.Ledger.Pins) > 0 {
			return true
		}
	}
	return false
}

// Record puts l's header where it lives, in the status st about to be
// written; its entries go to the slices (PlanSlices).
func (*Store) Record(st *v1alpha2.ImageCacheStatus, l *Ledger) { st.Ledger = l.Header() }
