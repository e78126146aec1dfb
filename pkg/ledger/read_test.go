package ledger

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The NodeReader decodes each node as Decode does, one node at a time,
// counts the entries it decoded, and leaves out a replaced node's states.
func TestNodeReader(t *testing.T) {
	l := New(7)
	for n := range 4 {
		node := fmt.Sprintf("node-%d", n)
		l.tags[node] = fmt.Sprintf("tag0000%d", n)
		for i := range 9 {
			img := fmt.Sprintf("registry.example/app-%d:v1", i)
			l.Set(node, img, State((n+i)%4))
			l.SetOwned(node, img, (n+i)%3 == 0)
			l.SetPin(node, img, PinState((n*i)%4))
		}
	}
	l.SetPin("node-9", "registry.example/app-1:v1", Pinned) // pins only
	enc := l.Encode()
	dec := Decode(enc)
	r, err := NewNodeReader(enc)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"node-0", "node-1", "node-2", "node-3", "node-9"}, r.Nodes()); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	for n := range 4 {
		node := fmt.Sprintf("node-%d", n)
		rec := r.Node(node, fmt.Sprintf("tag0000%d", n))
		if rec.Replaced {
			t.Errorf("%s: replaced", node)
		}
		want := NodeRecord{States: dec.states[node], Owned: dec.owned[node], Pins: dec.pins[node]}
		if diff := cmp.Diff(want, rec, emptyIsNil()); diff != "" {
			t.Errorf("%s (-Decode +NodeReader):\n%s", node, diff)
		}
		if r.Decoded() != n+1 {
			t.Errorf("after %s: %d decoded, want %d", node, r.Decoded(), n+1)
		}
	}
	rec := r.Node("node-1", "othernod")
	if !rec.Replaced || rec.States != nil || rec.Owned != nil {
		t.Errorf("a replaced node: %+v, want Replaced and no states or owned images", rec)
	}
	if rec.Pins == nil {
		t.Error("a replaced node's pins (kept by name) are left out")
	}
	if got := r.Node("node-9", "").Pins["registry.example/app-1:v1"]; got != Pinned {
		t.Errorf("node-9's pin: %v, want pinned", got)
	}
	if rec := r.Node("absent", ""); rec.States != nil || rec.Owned != nil || rec.Pins != nil {
		t.Errorf("a node not in the ledger: %+v", rec)
	}
	nilReader, err := NewNodeReader(nil)
	if err != nil || nilReader.Nodes() != nil || nilReader.Node("node-0", "").States != nil {
		t.Errorf("a nil ledger: %v", err)
	}
}

// A ledger in a newer format is refused by the NodeReader with a
// *NewerFormatError, and read as empty by the controller's readers.
func TestNewerFormat(t *testing.T) {
	l := New(7)
	l.tags["node-0"] = "tag00000"
	l.Set("node-0", "registry.example/app:v1", Pulled)
	l.SetOwned("node-0", "registry.example/app:v1", true)
	l.RemovedAt = 5
	enc := l.Encode()
	for _, format := range []int32{0, 1, 2} {
		enc.Format = format
		if _, err := NewNodeReader(enc); err != nil {
			t.Errorf("format %d: %v", format, err)
		}
		if Decode(enc).Get("node-0", "registry.example/app:v1") != Pulled {
			t.Errorf("format %d: not decoded", format)
		}
	}
	enc.Format = 3
	_, err := NewNodeReader(enc)
	var newer *NewerFormatError
	if !errors.As(err, &newer) || newer.Format != 3 {
		t.Fatalf("format 3: %v, want a *NewerFormatError", err)
	}
	if got := err.Error(); got != "status.ledger is in format 3, written by a newer controller; this build reads format 2" {
		t.Errorf("message %q", got)
	}
	dec := Decode(enc)
	if dec.Get("node-0", "registry.example/app:v1") != Unsettled || dec.Owned("node-0", "registry.example/app:v1") {
		t.Error("Decode read a newer format's states or owned images")
	}
	if dec.Epoch != 7 || dec.RemovedAt != 5 {
		t.Errorf("Decode of a newer format: epoch %d, removedAt %d; want 7 and 5", dec.Epoch, dec.RemovedAt)
	}
	if NewReader(enc).Get("node-0", "registry.example/app:v1") != Unsettled {
		t.Error("Reader read a newer format's states")
	}
}
