package ledger

import (
	"encoding/base64"

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

// NewReader reads an encoded ledger (nil: nothing settled).
func NewReader(l *v1alpha2.PullLedger) Reader {
	if l == nil {
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
	enc, ok := l.Nodes[node.Name]
	if !ok {
		return nil
	}
	e := splitEntry(enc)
	if e.tag != "" && e.tag != UIDTag(node) {
		return nil
	}
	return decodeStates(tableOf(l.Images), e.states)
}
