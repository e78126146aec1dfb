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
	// owned holds, per node, the images this cache's own pull brought onto
	// it: the kubelet reported pulling them, so they were not there before.
	// Only those may this cache remove (a purge, or an update that drops
	// them). It outlives operations, unlike the states.
	owned map[string]map[string]bool
}

func newLedger(epoch int64) *ledger {
	return &ledger{epoch: epoch, nodes: map[string]map[string]pairState{}, tags: map[string]string{},
		owned: map[string]map[string]bool{}}
}

// isOwned says whether this cache's own pull brought the image onto the node.
func (l *ledger) isOwned(node, image string) bool { return l.owned[node][image] }

// setOwned records whether this cache's own pull brought the image onto
// the node (false once it removed it).
func (l *ledger) setOwned(node, image string, owned bool) {
	m := l.owned[node]
	if !owned {
		delete(m, image)
		if len(m) == 0 {
			delete(l.owned, node)
		}
		return
	}
	if m == nil {
		m = map[string]bool{}
		l.owned[node] = m
	}
	m[image] = true
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
			delete(l.owned, name)
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
		e := splitEntry(enc)
		out.tags[node] = e.tag
		if m := decodeStates(l.Images, e.states); len(m) > 0 {
			out.nodes[node] = m
		}
		if m := decodeOwned(l.Images, e.owned); len(m) > 0 {
			out.owned[node] = m
		}
	}
	return out
}

// nodeEntry is one node's entry of status.ledger.nodes, split:
// "STATES[.TAG[.OWNED]]".
type nodeEntry struct{ states, tag, owned string }

func splitEntry(enc string) nodeEntry {
	var e nodeEntry
	e.states, enc, _ = strings.Cut(enc, ".")
	e.tag, e.owned, _ = strings.Cut(enc, ".")
	return e
}

// decodeOwned decodes one node's owned images: a bit per image of the
// table, eight to a byte, base64 encoded.
func decodeOwned(images []string, enc string) map[string]bool {
	bits, err := base64.RawStdEncoding.DecodeString(enc)
	if err != nil || len(bits) == 0 {
		return nil
	}
	m := map[string]bool{}
	for i, img := range images {
		if i/8 < len(bits) && bits[i/8]&(1<<(i%8)) != 0 {
			m[img] = true
		}
	}
	return m
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

// settled is each pair's state as the ledger held it when the pass read it,
// to count what the pass settles (countSettled). It reads the status's
// encoded ledger where it is asked, rather than decoding a second copy: a
// cache over 5,000 nodes would hold two while it syncs.
type settled struct {
	raw   *v1alpha2.PullLedger
	index map[string]int // raw's images by their place in its table
	dec   *ledger        // set instead of raw: states already decoded
}

func readSettled(l *v1alpha2.PullLedger) settled {
	if l == nil {
		return settled{}
	}
	index := make(map[string]int, len(l.Images))
	for i, img := range l.Images {
		index[img] = i
	}
	return settled{raw: l, index: index}
}

// epoch is the operation the states belong to (0 for none).
func (s settled) epoch() int64 {
	switch {
	case s.dec != nil:
		return s.dec.epoch
	case s.raw != nil:
		return s.raw.Epoch
	}
	return 0
}

func (s settled) get(node, image string) pairState {
	if s.dec != nil {
		return s.dec.get(node, image)
	}
	i, ok := s.index[image]
	if s.raw == nil || !ok {
		return stateUnsettled
	}
	enc, ok := s.raw.Nodes[node]
	if !ok {
		return stateUnsettled
	}
	return stateAt(splitEntry(enc).states, i)
}

// stateAt decodes the state of the i-th image of the table from one node's
// encoded states (decodeStates decodes them all): two bits an image, four to
// a byte, three bytes to each group of four base64 characters.
func stateAt(enc string, i int) pairState {
	b := i / 4
	lo := b / 3 * 4
	if lo >= len(enc) {
		return stateUnsettled
	}
	var buf [3]byte
	n, err := base64.RawStdEncoding.Decode(buf[:], []byte(enc[lo:min(lo+4, len(enc))]))
	if err != nil || b%3 >= n {
		return stateUnsettled
	}
	return pairState(buf[b%3]>>(2*(i%4))) & 3
}

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

// keepOnly drops every entry, state and ownership, that is not a wanted
// (node, image) pair.
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
	for node, m := range l.owned {
		for img := range m {
			if !wanted(node, img) {
				l.setOwned(node, img, false)
			}
		}
	}
}

// fresh returns a ledger of the given epoch with no states, that keeps
// what this one knows beyond an operation: when the cache last removed
// images, and which images its own pulls brought onto which node.
func (l *ledger) fresh(epoch int64) *ledger {
	out := newLedger(epoch)
	out.removedAt = l.removedAt
	for node, m := range l.owned {
		for img := range m {
			out.setOwned(node, img, true)
		}
	}
	for node, t := range l.tags {
		if len(out.owned[node]) > 0 {
			out.tags[node] = t
		}
	}
	return out
}

// carryOver returns the ledger a new operation of the given epoch starts
// from when it builds on this one (an update): the pairs pulled or present,
// and not the failures, so that they are tried again.
func (l *ledger) carryOver(epoch int64) *ledger {
	out := l.fresh(epoch)
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
	for _, m := range l.owned {
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
	if len(l.nodes)+len(l.owned) > 0 {
		out.Nodes = make(map[string]string, len(l.nodes))
	}
	for _, node := range nodesOf(l) {
		bits := make([]byte, (len(images)+3)/4)
		for img, s := range l.nodes[node] {
			i := index[img]
			bits[i/4] |= byte(s) << (2 * (i % 4))
		}
		entry := base64.RawStdEncoding.EncodeToString(bits)
		tag := l.tags[node]
		if owned := l.owned[node]; len(owned) > 0 {
			obits := make([]byte, (len(images)+7)/8)
			for img := range owned {
				i := index[img]
				obits[i/8] |= 1 << (i % 8)
			}
			entry += "." + tag + "." + base64.RawStdEncoding.EncodeToString(obits)
		} else if tag != "" {
			entry += "." + tag
		}
		out.Nodes[node] = entry
	}
	if len(out.Images) == 0 {
		out.Images = nil
	}
	return out
}

// nodesOf lists the nodes that have states or owned images.
func nodesOf(l *ledger) []string {
	seen := make(map[string]bool, len(l.nodes)+len(l.owned))
	for n := range l.nodes {
		seen[n] = true
	}
	for n := range l.owned {
		seen[n] = true
	}
	return sortedKeys(seen)
}
