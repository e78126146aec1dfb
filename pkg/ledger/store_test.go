package ledger

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/client/clientset/versioned/fake"
	icinformers "kubefledged.io/kube-fledged/pkg/client/informers/externalversions"
)

// storeOf returns a Store over a slice informer, and the informer's cache.
func storeOf(t *testing.T) (*Store, cache.Indexer) {
	t.Helper()
	inf := icinformers.NewSharedInformerFactory(fake.NewSimpleClientset(), 0).Kubefledged().V1alpha2().ImageCacheSlices().Informer()
	s, err := NewStore(inf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewStore(inf); err != nil {
		t.Fatalf("a second store on the same informer: %v", err)
	}
	return s, inf.GetIndexer()
}

// record writes l as the controller does: its header into the status, its
// entries into the slices PlanSlices says, as the informer would then show
// them.
func record(t *testing.T, s *Store, idx cache.Indexer, ic *v1alpha2.ImageCache, l *Ledger) SliceWrites {
	t.Helper()
	current := map[string]*v1alpha2.PullLedger{}
	for _, sl := range s.Slices(ic) {
		current[sl.Name] = &sl.Ledger
	}
	w := PlanSlices(l, current, func(i int) string { return SliceName(ic, i) })
	for _, c := range w.Put {
		sl := NewSlice(ic, c)
		if err := idx.Update(sl); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range w.Delete {
		if err := idx.Delete(&v1alpha2.ImageCacheSlice{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ic.Namespace}}); err != nil {
			t.Fatal(err)
		}
	}
	s.Record(&ic.Status, l)
	return w
}

// TestStoreRoundTrip: what the controller records through the Store, every
// reader of the Store reads back, on the node it was recorded on only.
func TestStoreRoundTrip(t *testing.T) {
	const img = "docker.io/library/nginx:1.27"
	store, idx := storeOf(t)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", UID: "uid-a"}}
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a", UID: "0123456789"}}
	if store.HoldsPins(ic) || store.Load(ic).Get("node-a", img) != Unsettled {
		t.Fatal("an empty status reads as holding something")
	}
	l := New(1764000000)
	l.ForgetReplaced(map[string]*corev1.Node{"node-a": node}) // tags its entries
	l.Set("node-a", img, Pulled)
	l.SetOwned("node-a", img, true)
	if w := record(t, store, idx, ic, l); len(w.Put) != 1 || w.Put[0].Name != "web-01234567-0" {
		t.Fatalf("writes %+v, want one slice web-01234567-0", w)
	}
	if ic.Status.Ledger.Format != FormatVersion || len(ic.Status.Ledger.Nodes) != 0 || ic.Status.Ledger.Epoch != l.Epoch {
		t.Errorf("status.ledger %+v, want only the header", ic.Status.Ledger)
	}
	if w := record(t, store, idx, ic, l); len(w.Put)+len(w.Delete) != 0 {
		t.Errorf("recording the same ledger again writes %+v", w)
	}
	got, before := store.Open(ic)
	if got.Get("node-a", img) != Pulled || !got.Owned("node-a", img) {
		t.Errorf("loaded %v, owned %v", got.Get("node-a", img), got.Owned("node-a", img))
	}
	got.Set("node-a", img, Failed)
	if before.Get("node-a", img) != Pulled {
		t.Error("the copy as recorded changed with the loaded ledger")
	}
	if got := store.NodeStates(ic, node)[img]; got != Pulled {
		t.Errorf("node states %v", got)
	}
	replaced := node.DeepCopy()
	replaced.UID = "uid-b"
	if got := store.NodeStates(ic, replaced); len(got) != 0 {
		t.Errorf("a node re-created under the same name reads %v, want nothing", got)
	}
	other := ic.DeepCopy()
	other.UID = "another"
	if got := store.NodeStates(other, node); len(got) != 0 || store.Load(other).NodeCount() != 0 {
		t.Errorf("another cache reads this one's slices: %v", got)
	}
	r, err := OpenNodes(ic.Status.Ledger, SliceLedgers(store.Slices(ic)))
	if err != nil || r.Node("node-a", UIDTag(node)).States[img] != Pulled {
		t.Errorf("node reader: %v", err)
	}
	l.SetPin("node-a", img, Pinned)
	record(t, store, idx, ic, l)
	if !store.HoldsPins(ic) {
		t.Error("a recorded pin is not held")
	}
	l.Epoch++ // a new operation: its states are not the slice's yet
	store.Record(&ic.Status, l)
	if got := store.NodeStates(ic, node); len(got) != 0 {
		t.Errorf("a slice of the previous operation gives node states %v", got)
	}
	if got := store.Load(ic); got.Get("node-a", img) != Unsettled || !got.Owned("node-a", img) || got.Pin("node-a", img) != Pinned {
		t.Errorf("a slice of the previous operation: %v, owned %v, pin %v; want its owned image and pin only",
			got.Get("node-a", img), got.Owned("node-a", img), got.Pin("node-a", img))
	}
}

// TestStoreMovesAFormat1Ledger: a cache whose status.ledger holds its
// entries (format 1, an earlier release) reads as it was recorded; its next
// record moves them into slices, with nothing lost and the status keeping
// only the header; a reader of either form reads the same.
func TestStoreMovesAFormat1Ledger(t *testing.T) {
	store, idx := storeOf(t)
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a", UID: "0123456789"}}
	l := bigLedger(2500)
	ic.Status.Ledger = l.Encode() // format 1, as an earlier release wrote it
	if diff := cmp.Diff(l.Encode(), store.Load(ic).Encode()); diff != "" {
		t.Fatalf("a format 1 ledger reads differently (-want +got):\n%s", diff)
	}
	r1, err := OpenNodes(ic.Status.Ledger, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := record(t, store, idx, ic, store.Load(ic))
	if len(w.Put) != 3 || len(store.Slices(ic)) != 3 || ic.Status.Ledger.Nodes != nil {
		t.Fatalf("moved into %d slices (%d written), status.ledger nodes %d", len(store.Slices(ic)), len(w.Put), len(ic.Status.Ledger.Nodes))
	}
	if diff := cmp.Diff(l.Encode(), store.Load(ic).Encode()); diff != "" {
		t.Errorf("the ledger moved into slices reads differently (-want +got):\n%s", diff)
	}
	r2, err := OpenNodes(ic.Status.Ledger, SliceLedgers(store.Slices(ic)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r1.Nodes(), r2.Nodes()); diff != "" {
		t.Errorf("the node readers list different nodes (-before +after):\n%s", diff)
	}
	for _, n := range []string{"node-00000", "node-01234", "node-02499"} {
		if diff := cmp.Diff(r1.Node(n, ""), r2.Node(n, "")); diff != "" {
			t.Errorf("%s reads differently (-before +after):\n%s", n, diff)
		}
	}
	// A crash after the slices were written and before the status was:
	// every node in two parts that agree, nothing to pull again.
	ic.Status.Ledger = l.Encode()
	if diff := cmp.Diff(l.Encode(), store.Load(ic).Encode()); diff != "" {
		t.Errorf("the status and the slices together read differently (-want +got):\n%s", diff)
	}
}

// TestPlanSlicesWritesWhatChanged: a change on one node writes its slice
// only; a sparse slice is merged into another and deleted, after the
// writes.
func TestPlanSlicesWritesWhatChanged(t *testing.T) {
	store, idx := storeOf(t)
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a", UID: "0123456789"}}
	l := bigLedger(2500)
	record(t, store, idx, ic, l)
	l.Set("node-01500", imgB, Pulled)
	w := record(t, store, idx, ic, l)
	if len(w.Put) != 1 || len(w.Delete) != 0 {
		t.Fatalf("one node changed: writes %+v", w)
	}
	if got := store.Load(ic).Get("node-01500", imgB); got != Pulled {
		t.Errorf("the change reads %v", got)
	}
	// The nodes past the first 1,000 keep only their owned images and
	// pins (a third and a fifth of them): the last slice, sparse, goes into
	// the one before.
	l.KeepOnly(func(node, _ string) bool { return node < "node-01000" })
	w = record(t, store, idx, ic, l)
	if len(w.Delete) != 1 || len(store.Slices(ic)) != 2 {
		t.Errorf("1,000 nodes left: writes %d, deletes %v, %d slices left", len(w.Put), w.Delete, len(store.Slices(ic)))
	}
	if got := store.Load(ic).NodeCount(); got != l.NodeCount() {
		t.Errorf("%d nodes read back, want %d", got, l.NodeCount())
	}
}

// TestMaxNodesPerSlice: a slice holds 1,000 nodes of few images, fewer of
// many, and never passes its budget.
func TestMaxNodesPerSlice(t *testing.T) {
	for _, c := range []struct{ table, name int }{{1, 253}, {10, 253}, {100, 253}, {1024, 253}, {10, 60}, {100, 60}} {
		table := c.table
		n := MaxNodesPerSlice(table, c.name)
		l := New(1)
		var imgs []string
		for i := range table {
			imgs = append(imgs, fmt.Sprintf("registry.example/image-%04d:v1", i))
		}
		name := func(i int) string { return fmt.Sprintf("%0*d", c.name, i) }
		for i := range n {
			for _, img := range imgs {
				l.Set(name(i), img, Present)
				l.SetOwned(name(i), img, true)
				l.SetPin(name(i), img, PinUnsure)
			}
			l.tags[name(i)] = "12345678"
		}
		enc := l.Encode()
		size := 0
		for k, v := range enc.Nodes {
			size += 2*len(k) + len(v)
		}
		for k, v := range enc.Pins {
			size += 2*len(k) + len(v)
		}
		t.Logf("%d images, names of %d: %d nodes, %d KiB", table, c.name, n, size>>10)
		if size > sliceBudget {
			t.Errorf("%d images: %d nodes take %d bytes, over %d", table, n, size, sliceBudget)
		}
		if c.name <= 60 && table <= 100 && n != v1alpha2.MaxSliceNodes {
			t.Errorf("%d images: %d nodes a slice, want %d", table, n, v1alpha2.MaxSliceNodes)
		}
	}
}

// wideLedger has nodes x images pairs pulled, with node names of 40
// characters.
func wideLedger(nodes, images int) *Ledger {
	l := New(1)
	for i := range nodes {
		n := fmt.Sprintf("ip-10-%d-%d-%d.eu-west-1.compute.internal", i/65536, (i/256)%256, i%256)
		for j := range images {
			l.Set(n, fmt.Sprintf("registry.example/team/app-%02d:v1", j), Pulled)
		}
		l.tags[n] = "12345678"
	}
	return l
}

// BenchmarkOpen65k: reading back a ledger of 65,000 nodes x 10 images from
// its 65 slices, as a pass of such a cache does.
func BenchmarkOpen65k(b *testing.B) {
	l := wideLedger(65000, 10)
	w := PlanSlices(l, nil, func(i int) string { return fmt.Sprintf("s-%d", i) })
	var sliced []*v1alpha2.PullLedger
	for _, c := range w.Put {
		sliced = append(sliced, c.Ledger)
	}
	header := l.Header()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		got := Open(header, sliced)
		if got.NodeCount() != 65000 {
			b.Fatal(got.NodeCount())
		}
	}
}

// BenchmarkPlanSlices65k: what a pass of such a cache does to write its
// ledger when nothing changed: every slice encoded and compared.
func BenchmarkPlanSlices65k(b *testing.B) {
	l := wideLedger(65000, 10)
	name := func(i int) string { return fmt.Sprintf("s-%d", i) }
	current := map[string]*v1alpha2.PullLedger{}
	for _, c := range PlanSlices(l, nil, name).Put {
		current[c.Name] = c.Ledger
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if w := PlanSlices(l, current, name); len(w.Put)+len(w.Delete) != 0 {
			b.Fatal(len(w.Put))
		}
	}
}
