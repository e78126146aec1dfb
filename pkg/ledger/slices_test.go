package ledger

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

func sliceName(i int) string { return fmt.Sprintf("web-%d", i) }

// bigLedger has n nodes with states, every third owning its image, every
// fifth pinning it.
func bigLedger(n int) *Ledger {
	l := New(100)
	l.RemovedAt = 90
	for i := range n {
		node := fmt.Sprintf("node-%05d", i)
		l.Set(node, imgA, Pulled)
		l.Set(node, imgB, Failed)
		l.tags[node] = fmt.Sprintf("%08d", i)
		if i%3 == 0 {
			l.SetOwned(node, imgA, true)
		}
		if i%5 == 0 {
			l.SetPin(node, imgA, Pinned)
		}
	}
	return l
}

// TestSlicesRoundTrip: a ledger of 2,500 nodes cut into slices of at most
// 1,000, each encoded and decoded as a slice's object would be, joins back
// into the same ledger.
func TestSlicesRoundTrip(t *testing.T) {
	l := bigLedger(2500)
	assign := Assign(nil, l.Nodes(), 1000, sliceName)
	if len(assign) != 3 {
		t.Fatalf("%d slices for 2,500 nodes, 1,000 each: %v", len(assign), slices.Sorted(maps.Keys(assign)))
	}
	var parts []*Ledger
	for _, name := range slices.Sorted(maps.Keys(assign)) {
		if n := len(assign[name]); n > 1000 {
			t.Errorf("slice %s holds %d nodes", name, n)
		}
		enc := l.Part(assign[name]).Encode()
		parts = append(parts, Decode(enc))
	}
	got := Join(l.Epoch, l.RemovedAt, parts...)
	if diff := cmp.Diff(l.Encode(), got.Encode()); diff != "" {
		t.Errorf("joined ledger differs (-want +got):\n%s", diff)
	}
}

// TestJoinKeepsOnlyWhatIsSure: a part of an older epoch brings its owned
// images and pins, not its states; a node found in two parts keeps its
// states only where both record the same ones, owns what both say, and
// holds every pin either holds.
func TestJoinKeepsOnlyWhatIsSure(t *testing.T) {
	now, old := New(200), New(100)
	now.Set("n1", imgA, Pulled)
	now.tags["n1"] = "11111111"
	old.Set("n2", imgA, Pulled)
	old.SetOwned("n2", imgA, true)
	old.SetPin("n2", imgB, Pinned)
	old.tags["n2"] = "22222222"
	got := Join(200, 0, now, old)
	if got.Get("n1", imgA) != Pulled || got.Get("n2", imgA) != Unsettled {
		t.Errorf("states: n1 %v, n2 %v; want n1 pulled, n2's older state dropped", got.Get("n1", imgA), got.Get("n2", imgA))
	}
	if !got.Owned("n2", imgA) || got.Pin("n2", imgB) != Pinned || got.Tag("n2") != "22222222" {
		t.Errorf("the older part's owned %v, pin %v, tag %q; want them kept", got.Owned("n2", imgA), got.Pin("n2", imgB), got.Tag("n2"))
	}

	a, b := New(200), New(200)
	for _, p := range []*Ledger{a, b} {
		p.Set("n", imgA, Pulled)
		p.SetOwned("n", imgA, true)
		p.tags["n"] = "33333333"
	}
	a.SetOwned("n", imgB, true)
	b.SetPin("n", imgC, Pinned)
	a.SetPin("n", imgD, PinRefused)
	b.SetPin("n", imgD, Pinned)
	got = Join(200, 0, a, b)
	if got.Get("n", imgA) != Pulled {
		t.Errorf("a node in two parts that agree on its states reads %v, want pulled", got.Get("n", imgA))
	}
	b.Set("n", imgB, Failed)
	if got := Join(200, 0, a, b); got.Get("n", imgA) != Unsettled {
		t.Errorf("a node in two parts that differ keeps its state %v", got.Get("n", imgA))
	}
	b.Set("n", imgB, Unsettled)
	if !got.Owned("n", imgA) || got.Owned("n", imgB) {
		t.Errorf("owned A %v, B %v; want only what both parts own", got.Owned("n", imgA), got.Owned("n", imgB))
	}
	if got.Pin("n", imgC) != Pinned || got.Pin("n", imgD) != PinUnsure {
		t.Errorf("pins C %v, D %v; want C pinned, D unsure (one part holds it)", got.Pin("n", imgC), got.Pin("n", imgD))
	}
	b.tags["n"] = "44444444" // two nodes of one name
	if got = Join(200, 0, a, b); got.Owned("n", imgA) || got.Pin("n", imgC) != Pinned {
		t.Errorf("two nodes of one name: owned %v, pin %v; want nothing owned, the pins held", got.Owned("n", imgA), got.Pin("n", imgC))
	}
}

// TestAssign: the EndpointSlice controller's habits. Nodes stay in their
// slices; a node new to the slices goes to a slice that changes anyway,
// else into the one slice it fits best, else into a new one; a sparse slice
// is emptied into the others' room; no slice holds more than the most.
func TestAssign(t *testing.T) {
	nodes := func(from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprintf("n%03d", i))
		}
		return out
	}
	check := func(t *testing.T, got map[string][]string, all []string, max int) {
		t.Helper()
		seen := map[string]string{}
		for name, ns := range got {
			if len(ns) == 0 || len(ns) > max {
				t.Errorf("slice %s holds %d nodes", name, len(ns))
			}
			for _, n := range ns {
				if s, dup := seen[n]; dup {
					t.Errorf("node %s in %s and %s", n, s, name)
				}
				seen[n] = name
			}
		}
		if len(seen) != len(all) {
			t.Errorf("%d nodes placed, want %d", len(seen), len(all))
		}
	}
	first := Assign(nil, nodes(0, 25), 10, sliceName)
	check(t, first, nodes(0, 25), 10)
	if diff := cmp.Diff(map[string][]string{"web-0": nodes(0, 10), "web-1": nodes(10, 20), "web-2": nodes(20, 25)}, first); diff != "" {
		t.Fatalf("first assignment (-want +got):\n%s", diff)
	}

	// n005 goes, n030 and n031 come: they go where n005 was, and into
	// web-2, which has room: the others are untouched.
	all := append(append(nodes(0, 5), nodes(6, 25)...), "n030", "n031")
	got := Assign(first, all, 10, sliceName)
	check(t, got, all, 10)
	if !slices.Equal(got["web-1"], first["web-1"]) {
		t.Errorf("web-1 changed: %v", got["web-1"])
	}
	if !slices.Contains(got["web-0"], "n030") || slices.Contains(got["web-0"], "n005") {
		t.Errorf("web-0 %v: want n005 gone and a new node in its place", got["web-0"])
	}

	// Eight new nodes, no slice changing: they fit in web-2's room, not
	// spread over web-0 and web-1.
	all = append(nodes(0, 25), nodes(30, 35)...)
	got = Assign(first, all, 10, sliceName)
	check(t, got, all, 10)
	if len(got["web-2"]) != 10 || !slices.Equal(got["web-0"], first["web-0"]) || !slices.Equal(got["web-1"], first["web-1"]) {
		t.Errorf("five new nodes: %v; want them all in web-2", got)
	}

	// Too many for one slice's room: a new slice, named after the ones
	// in use.
	all = append(nodes(0, 25), nodes(30, 42)...)
	got = Assign(first, all, 10, sliceName)
	check(t, got, all, 10)
	if _, ok := got["web-3"]; !ok {
		t.Errorf("no new slice web-3: %v", slices.Sorted(maps.Keys(got)))
	}

	// Most nodes go: web-1 keeps two, under a quarter of 10, which fit
	// in the others' room: it is emptied, and so deleted.
	all = append(nodes(0, 10), nodes(10, 12)...)
	all = append(all, nodes(20, 25)...)
	got = Assign(first, all, 10, sliceName)
	check(t, got, all, 10)
	if _, ok := got["web-1"]; ok {
		t.Errorf("the sparse web-1 stays: %v", got)
	}
	if len(got) != 2 {
		t.Errorf("%d slices for %d nodes: %v", len(got), len(all), got)
	}

	// Every node gone: no slice.
	if got := Assign(first, nil, 10, sliceName); len(got) != 0 {
		t.Errorf("no nodes: %v", got)
	}
}

// FuzzJoinDamagedSlices: slices whose entries anyone may have edited
// decode and join without a panic, and a damaged entry never reads as
// pulled or owned: it is pulled again.
func FuzzJoinDamagedSlices(f *testing.F) {
	f.Add("AQ.11111111.AQ", "Aw", "BQ", int64(100))
	f.Add("!!", "!!", "..", int64(99))
	f.Add("AQ..", "", "AQ.22222222.Ag==", int64(100))
	f.Fuzz(func(t *testing.T, entry, pins, other string, epoch int64) {
		table := []string{imgA, imgB}
		a := Decode(&v1alpha2.PullLedger{Epoch: 100, Images: table, Nodes: map[string]string{"n": entry, "m": other},
			Pins: map[string]string{"n": pins}})
		b := Decode(&v1alpha2.PullLedger{Epoch: epoch, Images: table, Nodes: map[string]string{"n": other}})
		got := Join(100, 0, a, b)
		// Where b has no entry of n, what n reads is a's entry alone.
		e, alone := splitEntry(entry), !slices.Contains(b.Nodes(), "n")
		if alone && decodeStates(table, e.states) == nil && (got.Get("n", imgA) != Unsettled || got.Get("n", imgB) != Unsettled) {
			t.Errorf("a damaged entry %q reads %v/%v", entry, got.Get("n", imgA), got.Get("n", imgB))
		}
		if alone && decodeOwned(table, e.owned) == nil && (got.Owned("n", imgA) || got.Owned("n", imgB)) {
			t.Errorf("damaged owned bits %q own something", entry)
		}
		// Where n is in both parts, it keeps no state at all.
		if slices.Contains(b.Nodes(), "n") && slices.Contains(a.Nodes(), "n") && got.Get("n", imgA) != Unsettled {
			t.Errorf("a node in two slices keeps a state")
		}
		_ = got.Encode()
	})
}

// TestEncodeNodesIsThePartsEncoding: a slice's encoding, written from the
// ledger without copying its part, is the part's own.
func TestEncodeNodesIsThePartsEncoding(t *testing.T) {
	l := bigLedger(300)
	l.SetPin("node-00007", imgC, PinRefused)
	l.tags["node-99999"] = "tagonly0" // a tag with no entry is not written
	for _, nodes := range [][]string{l.Nodes(), l.Nodes()[:10], {"node-00007", "node-00010", "node-99999"}, nil} {
		if diff := cmp.Diff(l.Part(nodes).Encode(), l.encodeNodes(nodes)); diff != "" {
			t.Errorf("%d nodes (-part +direct):\n%s", len(nodes), diff)
		}
	}
}
