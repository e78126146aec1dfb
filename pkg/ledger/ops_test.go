package ledger

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// What a new operation starts from.
func TestFreshCarryOverAndContinue(t *testing.T) {
	before := newLedger(10, removedAt(9),
		state("n1", imgA, Pulled), state("n1", imgB, Failed), state("n1", imgC, Present), tag("n1", "t1"),
		state("n2", imgA, Failed), tag("n2", "t2"),
		owned("n3", imgA), tag("n3", "t3"))
	for _, tc := range []struct {
		name string
		op   func(*Ledger) *Ledger
		want contents
	}{{
		name: "fresh keeps only what outlives an operation",
		op:   func(l *Ledger) *Ledger { return l.Fresh(20) },
		want: contents{Epoch: 20, RemovedAt: 9, States: map[string]map[string]State{},
			Tags: map[string]string{"n3": "t3"}, Owned: map[string]map[string]bool{"n3": {imgA: true}}},
	}, {
		name: "carry over keeps what was pulled or present, not the failures",
		op:   func(l *Ledger) *Ledger { return l.CarryOver(20) },
		want: contents{Epoch: 20, RemovedAt: 9,
			States: map[string]map[string]State{"n1": {imgA: Pulled, imgC: Present}},
			Tags:   map[string]string{"n1": "t1", "n3": "t3"}, Owned: map[string]map[string]bool{"n3": {imgA: true}}},
	}, {
		name: "continue keeps every state, the failures too",
		op:   func(l *Ledger) *Ledger { return l.Continue(20) },
		want: contents{Epoch: 20, RemovedAt: 9,
			States: map[string]map[string]State{"n1": {imgA: Pulled, imgB: Failed, imgC: Present}, "n2": {imgA: Failed}},
			Tags:   map[string]string{"n1": "t1", "n2": "t2", "n3": "t3"}, Owned: map[string]map[string]bool{"n3": {imgA: true}}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, contentsOf(tc.op(before))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if before.Get("n1", imgB) != Failed {
				t.Error("the ledger it started from changed")
			}
		})
	}
}

func TestKeepOnly(t *testing.T) {
	l := newLedger(1, state("n1", imgA, Pulled), state("n1", imgB, Pulled), owned("n1", imgB), owned("n2", imgA))
	l.KeepOnly(func(node, image string) bool { return node == "n1" && image == imgA })
	want := contents{Epoch: 1, States: map[string]map[string]State{"n1": {imgA: Pulled}},
		Tags: map[string]string{}, Owned: map[string]map[string]bool{}}
	if diff := cmp.Diff(want, contentsOf(l)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func node(name, uid string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(uid)}}
}

func TestForgetReplaced(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       *Ledger
		nodes    map[string]*corev1.Node
		replaced []string
		want     contents
	}{{
		name:  "same node: kept, tag unchanged",
		in:    newLedger(1, state("n1", imgA, Pulled), tag("n1", "0123abcd")),
		nodes: map[string]*corev1.Node{"n1": node("n1", "0123abcd-0000")},
		want: contents{Epoch: 1, States: map[string]map[string]State{"n1": {imgA: Pulled}},
			Tags: map[string]string{"n1": "0123abcd"}, Owned: map[string]map[string]bool{}},
	}, {
		name:     "re-created node: its states and owned images go",
		in:       newLedger(1, state("n1", imgA, Pulled), owned("n1", imgA), tag("n1", "0123abcd")),
		nodes:    map[string]*corev1.Node{"n1": node("n1", "ffffffff-0000")},
		replaced: []string{"n1"},
		want:     contents{Epoch: 1, States: map[string]map[string]State{}, Tags: map[string]string{}, Owned: map[string]map[string]bool{}},
	}, {
		name:  "untagged entry: tagged with its node of now",
		in:    newLedger(1, state("n1", imgA, Present)),
		nodes: map[string]*corev1.Node{"n1": node("n1", "abcdef12-3456")},
		want: contents{Epoch: 1, States: map[string]map[string]State{"n1": {imgA: Present}},
			Tags: map[string]string{"n1": "abcdef12"}, Owned: map[string]map[string]bool{}},
	}, {
		name:  "a node that is gone: left alone",
		in:    newLedger(1, state("n1", imgA, Present), tag("n1", "0123abcd")),
		nodes: map[string]*corev1.Node{},
		want: contents{Epoch: 1, States: map[string]map[string]State{"n1": {imgA: Present}},
			Tags: map[string]string{"n1": "0123abcd"}, Owned: map[string]map[string]bool{}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.replaced, tc.in.ForgetReplaced(tc.nodes)); diff != "" {
				t.Errorf("replaced (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, contentsOf(tc.in)); diff != "" {
				t.Errorf("ledger (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNodeStates(t *testing.T) {
	enc := newLedger(1, state("n1", imgA, Pulled), tag("n1", "0123abcd"), state("n2", imgA, Failed)).Encode()
	for _, tc := range []struct {
		name string
		node *corev1.Node
		want map[string]State
	}{
		{"recorded on this node", node("n1", "0123abcd-00"), map[string]State{imgA: Pulled}},
		{"recorded on an earlier node of the name", node("n1", "99999999-00"), nil},
		{"untagged", node("n2", "whatever"), map[string]State{imgA: Failed}},
		{"absent", node("n3", "x"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, NodeStates(enc, tc.node), emptyIsNil()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// EstimateSize is at least the size of what Encode writes for a ledger in
// which every pair is settled and owned, with its managedFields, and not
// much more.
func TestEstimateSizeCoversTheEncoding(t *testing.T) {
	for _, tc := range []struct{ nodes, images int }{{1, 1}, {10, 3}, {100, 10}, {7, 512}} {
		t.Run(fmt.Sprintf("%dx%d", tc.nodes, tc.images), func(t *testing.T) {
			l := New(1)
			var table []string
			for i := range tc.images {
				table = append(table, fmt.Sprintf("registry.example/app-%03d:v1", i))
			}
			var names []string
			for n := range tc.nodes {
				name := fmt.Sprintf("ip-10-0-%d-%d.eu-west-1.compute.internal", n/256, n%256)
				l.tags[name] = "0123abcd"
				names = append(names, name)
				for _, img := range table {
					l.Set(name, img, Failed)
					l.SetOwned(name, img, true)
				}
			}
			enc := l.Encode()
			data, err := json.Marshal(enc)
			if err != nil {
				t.Fatal(err)
			}
			real := len(data) + len(`"ledger":,`)
			for name := range enc.Nodes {
				real += len(name) + len(ManagedFieldsEntry)
			}
			got := EstimateSize(slices.Values(names), slices.Values(table))
			if got < real || got > real+ledgerOverhead+tc.nodes*len(".12345678.") {
				t.Errorf("estimate %d, encoded %d: want an upper bound, and a close one", got, real)
			}

			// Every pair pinned too.
			for _, name := range names {
				for _, img := range table {
					l.SetPin(name, img, PinRefused)
				}
			}
			enc = l.Encode()
			if data, err = json.Marshal(enc); err != nil {
				t.Fatal(err)
			}
			realPinned := len(data) + len(`"ledger":,`)
			for name := range enc.Nodes {
				realPinned += 2 * (len(name) + len(ManagedFieldsEntry))
			}
			gotPinned := got + EstimatePinsSize(slices.Values(names), len(table))
			if gotPinned < realPinned || gotPinned > realPinned+ledgerOverhead+tc.nodes*len(".12345678.") {
				t.Errorf("with pins: estimate %d, encoded %d: want an upper bound, and a close one", gotPinned, realPinned)
			}
		})
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Unsettled: "unsettled", Pulled: "pulled", Present: "present", Failed: "failed", 7: "unsettled"} {
		if got := s.String(); got != want {
			t.Errorf("%d: %q, want %q", s, got, want)
		}
	}
}

// FuzzDecode feeds Decode and the Reader a table and one node's entry as
// anyone with rights on the status could write them. Neither panics; they
// agree on every pair; an entry whose states are not base64 settles nothing
// and one whose owned bits are not owns nothing; and what Decode makes of
// it encodes and decodes again to the same ledger.
func FuzzDecode(f *testing.F) {
	for _, seed := range []struct{ images, entry string }{
		{"a\nb\nc", "OQ.0123abcd.Bw"},
		{"docker.io/library/nginx:1.27\ndocker.io/library/redis:7.4", "BQ.a1b2c3d4"},
		{"a", "!!!!"},
		{"a\nb", "B"},
		{"a\na", "AQ..Aw"},
		{"", ".."},
		{"a\nb\nc\nd\ne", "OQ=="},
		{"a\nb", "O\nQ.tag.\nAQ"},
	} {
		f.Add(seed.images, seed.entry, int64(1))
	}
	f.Fuzz(func(t *testing.T, images, entry string, epoch int64) {
		var table []string
		if images != "" {
			for _, img := range splitLines(images) {
				table = append(table, img)
			}
		}
		enc := &v1alpha2.PullLedger{Epoch: epoch, Images: table, Nodes: map[string]string{"n": entry}}
		dec, in := Decode(enc), NewReader(enc)
		e := splitEntry(entry)
		_, statesErr := base64.RawStdEncoding.DecodeString(e.states)
		_, ownedErr := base64.RawStdEncoding.DecodeString(e.owned)
		for _, img := range append(table, "absent") {
			if got, want := in.Get("n", img), dec.Get("n", img); got != want {
				t.Fatalf("%q: the Reader reads %v, Decode %v", img, got, want)
			}
			if statesErr != nil && dec.Get("n", img) != Unsettled {
				t.Fatalf("%q: damaged states %q read as %v", img, e.states, dec.Get("n", img))
			}
			if ownedErr != nil && dec.Owned("n", img) {
				t.Fatalf("%q: damaged owned bits %q read as owned", img, e.owned)
			}
		}
		again := Decode(dec.Encode())
		if diff := cmp.Diff(contentsOf(dec), contentsOf(again)); diff != "" {
			t.Fatalf("Decode(Encode(Decode)) differs (-first +again):\n%s", diff)
		}
	})
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// TestPins: pins round-trip through the status form, on nodes with states
// and on nodes with pins only; they outlive KeepOnly (only taking a pin
// away ends its record) and a fresh operation, which drops the refused ones
// to try them again; a replaced node's pins stay, unsure (its disk may have
// kept them).
func TestPins(t *testing.T) {
	l := New(100)
	l.Set("n1", imgA, Pulled)
	l.SetPin("n1", imgA, Pinned)
	l.SetPin("n1", imgB, PinRefused)
	l.SetPin("n2", imgC, Pinned) // a node with pins only
	l.SetPin("n2", imgD, PinUnsure)
	node := func(name, uid string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(uid)}}
	}
	l.ForgetReplaced(map[string]*corev1.Node{"n1": node("n1", "11111111-x"), "n2": node("n2", "22222222-x")})

	enc := l.Encode()
	if len(enc.Pins) != 2 || !strings.HasSuffix(enc.Nodes["n2"], ".22222222") {
		t.Errorf("encoded: pins %v, nodes %v; want pins of two nodes and n2's tag", enc.Pins, enc.Nodes)
	}
	got := Decode(enc)
	for _, c := range []struct {
		node, image string
		want        PinState
	}{{"n1", imgA, Pinned}, {"n1", imgB, PinRefused}, {"n2", imgC, Pinned}, {"n2", imgD, PinUnsure}, {"n2", imgA, NotPinned}} {
		if s := got.Pin(c.node, c.image); s != c.want {
			t.Errorf("decoded pin of %s on %s: %v, want %v", c.image, c.node, s, c.want)
		}
	}
	if diff := cmp.Diff(enc, got.Encode()); diff != "" {
		t.Errorf("encode(decode(x)) != x (-before +after):\n%s", diff)
	}

	got.KeepOnly(func(string, string) bool { return false })
	if got.Pin("n1", imgA) != Pinned || got.Pin("n2", imgC) != Pinned {
		t.Errorf("KeepOnly dropped pins: %v", got.pins)
	}
	fresh := got.Fresh(200)
	if fresh.Pin("n1", imgA) != Pinned || fresh.Pin("n1", imgB) != NotPinned || fresh.Pin("n2", imgC) != Pinned || fresh.Pin("n2", imgD) != PinUnsure {
		t.Errorf("fresh ledger's pins: %v; want those held (pinned, unsure), not the refused", fresh.pins)
	}
	if fresh.Tag("n2") != "22222222" {
		t.Errorf("fresh ledger lost the tag of a node with pins only")
	}
	fresh.ForgetReplaced(map[string]*corev1.Node{"n1": node("n1", "11111111-x"), "n2": node("n2", "33333333-x")})
	if fresh.Pin("n2", imgC) != PinUnsure || fresh.Pin("n2", imgD) != PinUnsure || fresh.Pin("n1", imgA) != Pinned {
		t.Errorf("after n2 was replaced: %v; want n2's pins unsure, n1's kept", fresh.pins)
	}
	fresh.SetPin("n2", imgC, NotPinned)
	fresh.SetPin("n2", imgD, NotPinned)
	fresh.SetPin("n1", imgA, NotPinned)
	if e := fresh.Encode(); len(e.Pins) != 0 || e.Pins != nil {
		t.Errorf("no pins left, encoded %v", e.Pins)
	}
	// A damaged pins entry pins nothing.
	enc.Pins["n1"] = "!!"
	if d := Decode(enc); d.Pin("n1", imgA) != NotPinned || d.Pin("n2", imgC) != Pinned {
		t.Errorf("damaged entry: %v", d.pins)
	}
}
