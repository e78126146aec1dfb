package ledger

import (
	"encoding/base64"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// Reader reads pairs' states from status.ledger as it is encoded, without
// decoding a copy: a cache over 5,000 nodes would hold two ledgers while it
// syncs. It reads what Decode decodes. It decodes one node's states at a
// time, and keeps them while it is asked of the same node.
type Reader struct {
	raw   *v1alpha2.PullLedger
	index map[string]int // raw's images by their (last) place in its table
	dec   *Ledger        // set instead of raw: states already decoded
	last  *decodedNode
}

type decodedNode struct {
	node string
	bits []byte
	ok   bool // node's entry was decoded into bits
}

// NewReader reads an encoded ledger (nil, or one in a newer format:
// nothing settled).
func NewReader(l *v1alpha2.PullLedger) Reader {
	if l == nil || CheckFormat(l) != nil {
		return Reader{}
	}
	index := make(map[string]int, len(l.Images))
	for i, img := range tableOf(l.Images) {
		if img != "" {
			index[img] = i
		}
	}
	return Reader{raw: l, index: index, last: &decodedNode{}}
}

// ReaderOf reads a decoded ledger.
func ReaderOf(l *Ledger) Reader { return Reader{dec: l} }

// Epoch is the operation the states belong to (0 for none).
func (r Reader) Epoch() int64 {
	switch {
	case r.dec != nil:
		return r.dec.Epoch
	case r.raw != nil:
		return r.raw.Epoch
	}
	return 0
}

// Get returns the state of an image (normalised) on a node.
func (r Reader) Get(node, image string) State {
	if r.dec != nil {
		return r.dec.Get(node, image)
	}
	i, ok := r.index[image]
	if r.raw == nil || !ok {
		return Unsettled
	}
	if !r.last.ok || r.last.node != node {
		enc, ok := r.raw.Nodes[node]
		if !ok {
			return Unsettled
		}
		bits, err := base64.RawStdEncoding.AppendDecode(r.last.bits[:0], []byte(splitEntry(enc).states))
		r.last.node, r.last.bits, r.last.ok = node, bits, true
		if err != nil {
			r.last.bits = r.last.bits[:0] // damaged: nothing settled
		}
	}
	return stateAt(r.last.bits, i)
}

// stateAt is the state of the i-th image of the table in one node's decoded
// states: two bits an image, four to a byte.
func stateAt(bits []byte, i int) State {
	if i/4 >= len(bits) {
		return Unsettled
	}
	return State(bits[i/4]>>(2*(i%4))) & 3
}

// NodeStates decodes the states of one node, if they were recorded on this
// node (not on an earlier one of the same name).
func NodeStates(l *v1alpha2.PullLedger, node *corev1.Node) map[string]State {
	if l == nil {
		return nil
	}
	if _, ok := l.Nodes[node.Name]; !ok {
		return nil // the image table is not decoded for a node not recorded
	}
	r, err := NewNodeReader(l)
	if err != nil {
		return nil
	}
	return r.Node(node.Name, UIDTag(node)).States
}

// FormatVersion is the version of the ledger's encoding that this package
// writes (status.ledger.format, and each slice's ledger.format). Format 1
// (absent) kept every entry in status.ledger; format 2 keeps them in the
// cache's ImageCacheSlices, with the same encoding of an entry, and
// status.ledger holds only the epoch and the removal time. This package
// reads both: a cache recorded in format 1 is moved into slices by its next
// write. A reader of format 1 refuses format 2 rather than read a ledger
// with no entries as one where nothing was pulled and nothing is owned.
const FormatVersion = 2

// NewerFormatError is a ledger written in an encoding newer than this
// package knows: reading it would give wrong answers.
type NewerFormatError struct{ Format int32 }

func (e *NewerFormatError) Error() string {
	return fmt.Sprintf("status.ledger is in format %d, written by a newer controller; this build reads format %d",
		e.Format, FormatVersion)
}

// CheckFormat returns a *NewerFormatError for a ledger in an encoding this
// package does not know.
func CheckFormat(l *v1alpha2.PullLedger) error {
	if l != nil && l.Format > FormatVersion {
		return &NewerFormatError{Format: l.Format}
	}
	return nil
}

// NodeRecord is what a ledger records of one node.
type NodeRecord struct {
	// States are the settled images (normalised) of the current operation.
	States map[string]State
	// Owned are the images the cache's own pull brought onto the node.
	Owned map[string]bool
	// Pins are the cache's pin states there.
	Pins map[string]PinState
	// Replaced says the entry was recorded on an earlier node of the same
	// name: its states and owned images are not this node's, and are left
	// out.
	Replaced bool
}

// NodeReader reads an encoded ledger one node at a time, for tools that
// walk many nodes and should not hold the whole decoded record: only the
// image tables are decoded up front. The ledger is status.ledger alone
// (format 1) or with the cache's slices (OpenNodes).
type NodeReader struct {
	parts []rawPart
	// where says which parts hold a node, when there are several.
	where   map[string][]int
	epoch   int64
	decoded int
}

// rawPart is one encoded part of a ledger and its decoded table.
type rawPart struct {
	raw   *v1alpha2.PullLedger
	table []string
}

// NewNodeReader reads an encoded ledger (nil: nothing recorded), or returns
// a *NewerFormatError.
func NewNodeReader(l *v1alpha2.PullLedger) (*NodeReader, error) {
	return OpenNodes(l, nil)
}

// OpenNodes reads a cache's ledger from its status.ledger and its slices'
// ledgers, as Open joins them, or returns a *NewerFormatError when any is
// in a format this build does not read.
func OpenNodes(header *v1alpha2.PullLedger, sliced []*v1alpha2.PullLedger) (*NodeReader, error) {
	r := &NodeReader{}
	for _, l := range append([]*v1alpha2.PullLedger{header}, sliced...) {
		if err := CheckFormat(l); err != nil {
			return nil, err
		}
		if l != nil && len(l.Nodes)+len(l.Pins) > 0 {
			r.parts = append(r.parts, rawPart{raw: l, table: tableOf(l.Images)})
		}
	}
	if header != nil {
		r.epoch = header.Epoch
	}
	if len(r.parts) > 1 {
		r.where = map[string][]int{}
		for i, p := range r.parts {
			for _, n := range rawNodes(p.raw) {
				r.where[n] = append(r.where[n], i)
			}
		}
	}
	return r, nil
}

// Node decodes what the ledger records of a node; uidTag is the node's
// UIDTag ("" to take the entry whatever node it was recorded on). A node two
// parts hold reads as Open reads it: no states, the images both own, every
// pin either holds.
func (r *NodeReader) Node(name, uidTag string) NodeRecord {
	switch {
	case len(r.parts) == 0:
		return NodeRecord{}
	case r.where == nil:
		return r.nodeIn(r.parts[0], name, uidTag)
	}
	held := r.where[name]
	if len(held) == 1 {
		return r.nodeIn(r.parts[held[0]], name, uidTag)
	}
	var rec NodeRecord
	for i, at := range held {
		one := r.nodeIn(r.parts[at], name, uidTag)
		rec.Replaced = rec.Replaced || one.Replaced
		if i == 0 {
			rec.Owned = one.Owned
		}
		for img := range rec.Owned {
			if !one.Owned[img] {
				delete(rec.Owned, img)
			}
		}
		for img, s := range one.Pins {
			if rec.Pins == nil {
				rec.Pins = map[string]PinState{}
			}
			if cur := rec.Pins[img]; cur == NotPinned {
				rec.Pins[img] = s
			} else if s.Held() && cur != s {
				rec.Pins[img] = PinUnsure
			}
		}
	}
	return rec
}

// nodeIn decodes a node's record in one part; its states count only if the
// part is of the ledger's epoch.
func (r *NodeReader) nodeIn(p rawPart, name, uidTag string) NodeRecord {
	var rec NodeRecord
	if enc, ok := p.raw.Nodes[name]; ok {
		r.decoded++
		e := splitEntry(enc)
		if e.tag != "" && uidTag != "" && e.tag != uidTag {
			rec.Replaced = true
		} else {
			if p.raw.Epoch == r.epoch {
				rec.States = decodeStates(p.table, e.states)
			}
			rec.Owned = decodeOwned(p.table, e.owned)
		}
	}
	if enc, ok := p.raw.Pins[name]; ok {
		for img, s := range decodeStates(p.table, enc) {
			if rec.Pins == nil {
				rec.Pins = map[string]PinState{}
			}
			rec.Pins[img] = PinState(s)
		}
	}
	return rec
}

// Decoded counts the node entries decoded so far.
func (r *NodeReader) Decoded() int { return r.decoded }

// Nodes lists, in name order, the nodes the ledger has an entry or pins of.
func (r *NodeReader) Nodes() []string {
	switch {
	case len(r.parts) == 0:
		return nil
	case r.where == nil:
		return rawNodes(r.parts[0].raw)
	}
	return sortedKeys(r.where)
}
