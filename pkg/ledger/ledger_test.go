package ledger

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

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
