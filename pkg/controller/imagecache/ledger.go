package imagecache

import (
	"encoding/base64"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// pairState is the settled state of one (node, image) pull in the ledger.
type pairState uint8

const (
	stateUnsettled pairState = iota
	statePulled
	statePresent
	stateFailed
)

// ledger is the decoded form of status.ledger: node -> normalised image -> state.
type ledger struct {
	epoch int64
	nodes map[string]map[string]pairState
	// tags holds, per node, the tag (uidTag) of the node the entries were
	// recorded on; "" when unknown.
	tags map[string]string
	// removedAt is when this cache last removed images (Unix seconds).
	removedAt int64
}

func newLedger(epoch int64) *ledger {
	return &ledger{epoch: epoch, nodes: map[string]map[string]pairState{}, tags: map[string]string{}}
}

// uidTag is the short form of a node's UID the ledger keeps: its first 8
// characters, enough to tell a node from the one it replaced under the same
// name, where the whole UID would double the ledger's size.
func uidTag(n *corev1.Node) string {
	uid := strings.ReplaceAll(string(n.UID), "-", "")
	return uid[:min(len(uid), 8)]
}

// forgetReplaced drops the entries of every node that was re-created under
// the same name since they were recorded (its UID tag changed), so that the
// new node is warmed again, and tags every node's entries with its node of
// now. It returns the names of the nodes it forgot.
func (l *ledger) forgetReplaced(nodes map[string]*corev1.Node) []string {
	var replaced []string
	for name := range l.nodes {
		n := nodes[name]
		if n == nil {
			continue
		}
		tag := uidTag(n)
		if old := l.tags[name]; old != "" && tag != "" && old != tag {
			delete(l.nodes, name)
			replaced = append(replaced, name)
		}
	}
	for name, n := range nodes {
		if tag := uidTag(n); tag != "" {
			l.tags[name] = tag
		}
	}
	sort.Strings(replaced)
	return replaced
}

func decodeLedger(l *v1alpha2.PullLedger) *ledger {
	if l == nil {
		return newLedger(0)
	}
	out := newLedger(l.Epoch)
	out.removedAt = l.RemovedAt
	for node, enc := range l.Nodes {
		enc, tag, _ := strings.Cut(enc, ".")
		out.tags[node] = tag
		if m := decodeStates(l.Images, enc); len(m) > 0 {
			out.nodes[node] = m
		}
	}
	return out
}

// decodeStates decodes one node's entry (without its tag): the state of each
// image of the table that is settled. A damaged entry only means "pull
// again".
func decodeStates(images []string, enc string) map[string]pairState {
	bits, err := base64.RawStdEncoding.DecodeString(enc)
	if err != nil {
		return nil
	}
	m := map[string]pairState{}
	for i, img := range images {
		if i/4 >= len(bits) {
			break
		}
		if s := pairState(bits[i/4]>>(2*(i%4))) & 3; s != stateUnsettled {
			m[img] = s
		}
	}
	return m
}

func (l *ledger) get(node, image string) pairState { return l.nodes[node][image] }

func (l *ledger) set(node, image string, s pairState) {
	m := l.nodes[node]
	if m == nil {
		m = map[string]pairState{}
		l.nodes[node] = m
	}
	if s == stateUnsettled {
		delete(m, image)
		return
	}
	m[image] = s
}

// keepOnly drops every entry that is not a wanted (node, image) pair.
func (l *ledger) keepOnly(wanted func(node, image string) bool) {
	for node, m := range l.nodes {
		for img := range m {
			if !wanted(node, img) {
				delete(m, img)
			}
		}
		if len(m) == 0 {
			delete(l.nodes, node)
		}
	}
}

// carryOver returns the ledger a new operation of the given epoch starts
// from when it builds on this one (an update): the pairs pulled or present,
// and not the failures, so that they are tried again.
func (l *ledger) carryOver(epoch int64) *ledger {
	out := newLedger(epoch)
	out.removedAt = l.removedAt
	for node, m := range l.nodes {
		for img, s := range m {
			if s != stateFailed {
				out.set(node, img, s)
			}
		}
		if t, ok := l.tags[node]; ok && len(out.nodes[node]) > 0 {
			out.tags[node] = t
		}
	}
	return out
}

// encode writes the ledger in its compact status form; the output depends
// only on the contents, so an unchanged ledger compares equal.
func (l *ledger) encode() *v1alpha2.PullLedger {
	index := map[string]int{}
	for _, m := range l.nodes {
		for img := range m {
			index[img] = 0
		}
	}
	images := make([]string, 0, len(index))
	for img := range index {
		images = append(images, img)
	}
	sort.Strings(images)
	for i, img := range images {
		index[img] = i
	}
	out := &v1alpha2.PullLedger{Epoch: l.epoch, Images: images, RemovedAt: l.removedAt}
	if len(l.nodes) > 0 {
		out.Nodes = make(map[string]string, len(l.nodes))
	}
	for node, m := range l.nodes {
		bits := make([]byte, (len(images)+3)/4)
		for img, s := range m {
			i := index[img]
			bits[i/4] |= byte(s) << (2 * (i % 4))
		}
		out.Nodes[node] = base64.RawStdEncoding.EncodeToString(bits)
		if tag := l.tags[node]; tag != "" {
			out.Nodes[node] += "." + tag
		}
	}
	if len(out.Images) == 0 {
		out.Images = nil
	}
	return out
}
