package ledger

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// The images of the tests, as the ledger holds them: normalised.
const (
	imgA = "registry.example/a:v1"
	imgB = "registry.example/b:v1"
	imgC = "registry.example/c:v1"
	imgD = "registry.example/d:v1"
	imgE = "registry.example/e:v1"
)

// contents is a ledger as plain maps, to compare.
type contents struct {
	Epoch, RemovedAt int64
	States           map[string]map[string]State
	Tags             map[string]string
	Owned            map[string]map[string]bool
}

// contentsOf leaves out what says nothing: empty maps, and the tags of nodes
// with no state and no owned image.
func contentsOf(l *Ledger) contents {
	c := contents{Epoch: l.Epoch, RemovedAt: l.RemovedAt, States: map[string]map[string]State{},
		Tags: map[string]string{}, Owned: map[string]map[string]bool{}}
	for node, m := range l.states {
		if len(m) > 0 {
			c.States[node] = m
		}
	}
	for node, m := range l.owned {
		if len(m) > 0 {
			c.Owned[node] = m
		}
	}
	for node, t := range l.tags {
		if t != "" && (len(l.states[node]) > 0 || len(l.owned[node]) > 0) {
			c.Tags[node] = t
		}
	}
	return c
}

type ledgerOption func(*Ledger)

func state(node, image string, s State) ledgerOption {
	return func(l *Ledger) { l.Set(node, image, s) }
}

func owned(node, image string) ledgerOption {
	return func(l *Ledger) { l.SetOwned(node, image, true) }
}

func tag(node, t string) ledgerOption { return func(l *Ledger) { l.tags[node] = t } }

func removedAt(at int64) ledgerOption { return func(l *Ledger) { l.RemovedAt = at } }

func newLedger(epoch int64, opts ...ledgerOption) *Ledger {
	l := New(epoch)
	for _, o := range opts {
		o(l)
	}
	return l
}

// The encoded form of ledgers that exercise each part of it, and decoding
// it gives the ledger back.
func TestEncodeDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *Ledger
		want *v1alpha2.PullLedger
	}{{
		name: "empty",
		in:   newLedger(5),
		want: &v1alpha2.PullLedger{Epoch: 5},
	}, {
		name: "one of each state",
		in: newLedger(7, state("n1", imgA, Pulled), state("n1", imgB, Present), state("n1", imgC, Failed),
			state("n2", imgD, Pulled)),
		// a=1, b=2<<2, c=3<<4: 0b00111001 = 0x39 "OQ"; n2: d is the 4th: 1<<6 = 0x40 "QA"
		want: &v1alpha2.PullLedger{Epoch: 7, Images: []string{imgA, imgB, imgC, imgD},
			Nodes: map[string]string{"n1": "OQ", "n2": "QA"}},
	}, {
		name: "tags and owned",
		in: newLedger(9, state("n1", imgA, Pulled), tag("n1", "0123abcd"), owned("n1", imgA),
			owned("n2", imgB), tag("n2", "ffff0000"), removedAt(8)),
		want: &v1alpha2.PullLedger{Epoch: 9, RemovedAt: 8, Images: []string{imgA, imgB},
			Nodes: map[string]string{"n1": "AQ.0123abcd.AQ", "n2": "AA.ffff0000.Ag"}},
	}, {
		name: "owned with no tag",
		in:   newLedger(1, owned("n1", imgA)),
		want: &v1alpha2.PullLedger{Epoch: 1, Images: []string{imgA}, Nodes: map[string]string{"n1": "AA..AQ"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.Encode()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("Encode (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(contentsOf(tc.in), contentsOf(Decode(got))); diff != "" {
				t.Errorf("Decode(Encode) (-want +got):\n%s", diff)
			}
		})
	}
}

// Random ledgers of every table length around the encoding's byte and
// base64 group boundaries go through Encode and Decode unchanged, and the
// Reader reads each pair as Decode does, for pairs absent too.
func TestRoundTripAndReader(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for images := 1; images <= 27; images++ {
		t.Run(fmt.Sprintf("%d images", images), func(t *testing.T) {
			l := New(42)
			var table []string
			for i := range images {
				table = append(table, fmt.Sprintf("registry.example/app-%02d:v1", i))
			}
			for n := range 6 {
				node := fmt.Sprintf("node-%d", n)
				l.tags[node] = "0123abcd"
				for _, img := range table {
					l.Set(node, img, State(r.IntN(4)))
					l.SetOwned(node, img, r.IntN(3) == 0)
				}
			}
			enc := l.Encode()
			dec, in := Decode(enc), NewReader(enc)
			if diff := cmp.Diff(contentsOf(l), contentsOf(dec)); diff != "" {
				t.Fatalf("Decode(Encode) (-want +got):\n%s", diff)
			}
			if in.Epoch() != 42 {
				t.Fatalf("epoch %d, want 42", in.Epoch())
			}
			for n := range 7 { // node-6 is not in the ledger
				node := fmt.Sprintf("node-%d", n)
				for _, img := range append(table, "registry.example/other:v1") {
					if got, want := in.Get(node, img), dec.Get(node, img); got != want {
						t.Errorf("%s %s: %v, want %v (as decoded)", node, img, got, want)
					}
				}
			}
		})
	}
}

// A damaged entry settles nothing and owns nothing; the rest of the ledger
// still reads.
func TestDamagedEntries(t *testing.T) {
	images := []string{imgA, imgB, imgC, imgD, imgE}
	for _, tc := range []struct {
		name, entry string
		states      map[string]State
		owned       map[string]bool
	}{
		{name: "one character, no whole byte", entry: "B"},
		{name: "not base64", entry: "!!!!"},
		{name: "base64 with padding", entry: "OQ=="},
		{name: "a newline inside, which base64 skips", entry: "O\nQ", states: map[string]State{imgA: Pulled, imgB: Present, imgC: Failed}},
		{name: "no states, a tag", entry: ".tag0"},
		{name: "damaged states, valid owned bits", entry: "!!.tag0.Hw", owned: map[string]bool{imgA: true, imgB: true, imgC: true, imgD: true, imgE: true}},
		{name: "valid states, damaged owned bits", entry: "OQ.tag0.!!", states: map[string]State{imgA: Pulled, imgB: Present, imgC: Failed}},
		{name: "shorter than the table", entry: "OQ", states: map[string]State{imgA: Pulled, imgB: Present, imgC: Failed}},
		{name: "longer than the table", entry: "OQ//", states: map[string]State{imgA: Pulled, imgB: Present, imgC: Failed, imgE: Failed}},
		{name: "more dots: the owned bits are damaged", entry: "OQ.tag0.AQ.x", states: map[string]State{imgA: Pulled, imgB: Present, imgC: Failed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := &v1alpha2.PullLedger{Epoch: 3, Images: images, Nodes: map[string]string{"bad": tc.entry, "good": "AQ"}}
			dec, in := Decode(enc), NewReader(enc)
			got := map[string]State{}
			gotOwned := map[string]bool{}
			for _, img := range images {
				if s := dec.Get("bad", img); s != Unsettled {
					got[img] = s
				}
				if dec.Owned("bad", img) {
					gotOwned[img] = true
				}
				if in.Get("bad", img) != dec.Get("bad", img) {
					t.Errorf("%s: the Reader reads %v, Decode %v", img, in.Get("bad", img), dec.Get("bad", img))
				}
			}
			if diff := cmp.Diff(tc.states, got, emptyIsNil()); diff != "" {
				t.Errorf("states (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.owned, gotOwned, emptyIsNil()); diff != "" {
				t.Errorf("owned (-want +got):\n%s", diff)
			}
			if dec.Get("good", imgA) != Pulled || in.Get("good", imgA) != Pulled {
				t.Errorf("the good entry next to it: %v, %v", dec.Get("good", imgA), in.Get("good", imgA))
			}
		})
	}
	if got := (Reader{}).Get("n", imgA); got != Unsettled {
		t.Errorf("no ledger: %v, want unsettled", got)
	}
	if got := NewReader(nil); got.Epoch() != 0 || got.Get("n", imgA) != Unsettled {
		t.Errorf("nil ledger: %+v", got)
	}
}

func emptyIsNil() cmp.Option {
	return cmp.FilterValues(func(x, y any) bool {
		return fmt.Sprint(x) == "map[]" || fmt.Sprint(y) == "map[]"
	}, cmp.Comparer(func(x, y any) bool { return fmt.Sprint(x) == fmt.Sprint(y) }))
}

// A name in the table that is not a normalised image reference (only a hand
// edit puts one there) has no state and is owned nowhere: it is never an
// image to remove.
func TestTableNamesThatAreNoImage(t *testing.T) {
	for _, bad := range []string{"", "nginx", "docker.io/library/NGINX:latest", "-rf /", "registry.example/a:v1 "} {
		t.Run(fmt.Sprintf("%q", bad), func(t *testing.T) {
			enc := &v1alpha2.PullLedger{Epoch: 1, Images: []string{bad, imgB}, Nodes: map[string]string{"n1": "BQ..Aw"}}
			dec, in := Decode(enc), NewReader(enc)
			if dec.Get("n1", bad) != Unsettled || in.Get("n1", bad) != Unsettled || dec.Owned("n1", bad) {
				t.Errorf("%q: %v, read %v, owned %v; want nothing", bad, dec.Get("n1", bad), in.Get("n1", bad), dec.Owned("n1", bad))
			}
			if dec.Get("n1", imgB) != Pulled || in.Get("n1", imgB) != Pulled || !dec.Owned("n1", imgB) {
				t.Errorf("the image next to it: %v, read %v, owned %v; want pulled and owned", dec.Get("n1", imgB), in.Get("n1", imgB), dec.Owned("n1", imgB))
			}
		})
	}
}

// An image that a hand-edited table lists twice takes its state, and its
// owned bit, from its last place, as the Reader reads it.
func TestDuplicateImagesInTheTable(t *testing.T) {
	enc := &v1alpha2.PullLedger{Epoch: 1, Images: []string{imgA, imgB, imgA}, Nodes: map[string]string{
		"n1": "AQ..Bw", // a:1 (pulled) then a:0; owned bits a,b,a
		"n2": "MA",     // a:0, b:0, a:3 (failed)
	}}
	dec, in := Decode(enc), NewReader(enc)
	for _, tc := range []struct {
		node  string
		want  State
		owned bool
	}{{"n1", Unsettled, true}, {"n2", Failed, false}} {
		if got := dec.Get(tc.node, imgA); got != tc.want {
			t.Errorf("%s: decoded %v, want %v", tc.node, got, tc.want)
		}
		if got := in.Get(tc.node, imgA); got != tc.want {
			t.Errorf("%s: read %v, want %v", tc.node, got, tc.want)
		}
		if got := dec.Owned(tc.node, imgA); got != tc.owned {
			t.Errorf("%s: owned %v, want %v", tc.node, got, tc.owned)
		}
	}
}

// What a new operation starts from.
func TestFreshAndCarryOver(t *testing.T) {
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
// to try them again; a replaced node's pins go with it.
func TestPins(t *testing.T) {
	l := New(100)
	l.Set("n1", imgA, Pulled)
	l.SetPin("n1", imgA, Pinned)
	l.SetPin("n1", imgB, PinRefused)
	l.SetPin("n2", imgC, Pinned) // a node with pins only
	l.SetPin("n2", imgD, PinStale)
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
	}{{"n1", imgA, Pinned}, {"n1", imgB, PinRefused}, {"n2", imgC, Pinned}, {"n2", imgD, PinStale}, {"n2", imgA, NotPinned}} {
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
	if fresh.Pin("n1", imgA) != Pinned || fresh.Pin("n1", imgB) != NotPinned || fresh.Pin("n2", imgC) != Pinned || fresh.Pin("n2", imgD) != PinStale {
		t.Errorf("fresh ledger's pins: %v; want those held (pinned, stale), not the refused", fresh.pins)
	}
	if fresh.Tag("n2") != "22222222" {
		t.Errorf("fresh ledger lost the tag of a node with pins only")
	}
	fresh.ForgetReplaced(map[string]*corev1.Node{"n1": node("n1", "11111111-x"), "n2": node("n2", "33333333-x")})
	if fresh.Pin("n2", imgC) != NotPinned || fresh.Pin("n1", imgA) != Pinned {
		t.Errorf("after n2 was replaced: %v; want n2's pins gone, n1's kept", fresh.pins)
	}
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
