package ledger

import (
	"iter"
	"maps"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// State is the settled state of one (node, image) pair of an operation.
type State uint8

const (
	// Unsettled: nothing is known yet; the operation still has to act.
	Unsettled State = iota
	// Pulled: the operation's Job did it (pulled; for a purge, removed).
	Pulled
	// Present: the image was there already (for a purge, kept).
	Present
	// Failed: the operation's Job failed it; status.failures says why.
	Failed
)

func (s State) String() string {
	switch s {
	case Pulled:
		return "pulled"
	case Present:
		return "present"
	case Failed:
		return "failed"
	}
	return "unsettled"
}

// Ledger is the decoded form of status.ledger: per node, each image's state
// in the current operation, the UID tag of the node they were recorded on,
// and the images the cache's own pulls brought onto it (owned).
type Ledger struct {
	// Epoch is the operation the states belong to (its start, Unix seconds).
	Epoch int64
	// RemovedAt is when the cache last removed images (Unix seconds).
	RemovedAt int64
	states    map[string]map[string]State
	// tags holds, per node, the UID tag of the node the entries were
	// recorded on; "" when unknown.
	tags map[string]string
	// owned holds, per node, the images the cache's own pull brought onto
	// it: the kubelet reported pulling them, so they were not there before.
	// Only those may the cache remove (a purge, or an update that drops
	// them). It outlives operations, unlike the states.
	owned map[string]map[string]bool
	// pins holds, per node, the images the cache pinned there, or tried
	// to and could not. It outlives operations and the spec: a pin stays
	// recorded until the cache takes it away.
	pins map[string]map[string]PinState
}

// PinState says whether the cache pinned an image on a node.
type PinState uint8

const (
	// NotPinned: the cache has no pin of the image there.
	NotPinned PinState = iota
	// Pinned: the cache pinned the image there.
	Pinned
	// PinRefused: the node refused the pin (the disk budget, a runtime
	// that cannot pin, a failure); status.unpinned says why. It is tried
	// again in the next operation.
	PinRefused
	// PinUnsure: the cache may hold a pin there, and no unpin confirmed it
	// gone: it pinned the image and has pulled its tag again since (a pull
	// that moves a tag may drop the record's labels), a pin Job's outcome is
	// not known (it runs, or was interrupted, or its pod went unread), the
	// node was registered again under the same name (its disk kept the
	// labels), or an unpin failed. It counts as held, to take away where the
	// cache no longer wants it, and is pinned again where it does.
	PinUnsure
)

func (s PinState) String() string {
	switch s {
	case Pinned:
		return "pinned"
	case PinRefused:
		return "refused"
	case PinUnsure:
		return "unsure"
	}
	return "not pinned"
}

// New returns an empty ledger of an epoch.
func New(epoch int64) *Ledger {
	return &Ledger{Epoch: epoch, states: map[string]map[string]State{}, tags: map[string]string{},
		owned: map[string]map[string]bool{}, pins: map[string]map[string]PinState{}}
}

// Held says whether the cache holds a pin there, to take away when it no
// longer wants it.
func (s PinState) Held() bool { return s == Pinned || s == PinUnsure }

// Pin returns the cache's pin state of an image on a node.
func (l *Ledger) Pin(node, image string) PinState { return l.pins[node][image] }

// SetPin records the cache's pin state of an image on a node.
func (l *Ledger) SetPin(node, image string, s PinState) {
	m := l.pins[node]
	if s == NotPinned {
		delete(m, image)
		if len(m) == 0 {
			delete(l.pins, node)
		}
		return
	}
	if m == nil {
		m = map[string]PinState{}
		l.pins[node] = m
	}
	m[image] = s
}

// PinNodes lists, in name order, the nodes with pin states.
func (l *Ledger) PinNodes() []string { return sortedKeys(l.pins) }

// PinsOn lists, in order, the images with a pin state on a node.
func (l *Ledger) PinsOn(node string) []string { return sortedKeys(l.pins[node]) }

// Get returns the state of an image (normalised) on a node.
func (l *Ledger) Get(node, image string) State { return l.states[node][image] }

// Set records the state of an image on a node; Unsettled forgets it.
func (l *Ledger) Set(node, image string, s State) {
	m := l.states[node]
	if m == nil {
		// A node keeps its entry (and tag) once it had one, even with no
		// state left in it.
		m = map[string]State{}
		l.states[node] = m
	}
	if s == Unsettled {
		delete(m, image)
		return
	}
	m[image] = s
}

// Owned says whether the cache's own pull brought the image onto the node.
func (l *Ledger) Owned(node, image string) bool { return l.owned[node][image] }

// SetOwned records whether the cache's own pull brought the image onto the
// node (false once it removed it).
func (l *Ledger) SetOwned(node, image string, owned bool) {
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

// OwnedNodes lists, in name order, the nodes with owned images.
func (l *Ledger) OwnedNodes() []string { return sortedKeys(l.owned) }

// OwnedOn lists, in order, the images owned on a node.
func (l *Ledger) OwnedOn(node string) []string { return sortedKeys(l.owned[node]) }

// Settled yields every settled pair and its state, in no order.
func (l *Ledger) Settled() iter.Seq2[Pair, State] {
	return func(yield func(Pair, State) bool) {
		for node, m := range l.states {
			for img, s := range m {
				if !yield(Pair{Node: node, Image: img}, s) {
					return
				}
			}
		}
	}
}

// Pair is one (node, image) pair; Image is normalised.
type Pair struct{ Node, Image string }

// Tag returns the UID tag recorded for a node ("" when none).
func (l *Ledger) Tag(node string) string { return l.tags[node] }

// UIDTag is the short form of a node's UID the ledger keeps: its first 8
// characters, enough to tell a node from the one it replaced under the same
// name, where the whole UID would double the ledger's size.
func UIDTag(n *corev1.Node) string {
	uid := strings.ReplaceAll(string(n.UID), "-", "")
	return uid[:min(len(uid), 8)]
}

// ForgetReplaced drops the entries of every node that was re-created under
// the same name since they were recorded (its UID tag changed), so that the
// new node is warmed again, and tags every node's entries with its node of
// now. A replaced node's pins stay, unsure: a node registered again keeps
// its disk, and the labels on it, until an unpin says otherwise. It returns
// the names of the nodes it forgot.
func (l *Ledger) ForgetReplaced(nodes map[string]*corev1.Node) []string {
	var replaced []string
	for name, old := range l.tags {
		n := nodes[name]
		if _, recorded := l.states[name]; n == nil || (!recorded && len(l.owned[name]) == 0 && len(l.pins[name]) == 0) {
			continue
		}
		// A node with owned images only (a new operation's ledger before
		// any state) counts too: its ownership must not pass to the node
		// that replaced it.
		if tag := UIDTag(n); old != "" && tag != "" && old != tag {
			delete(l.states, name)
			delete(l.owned, name)
			l.DoubtPins(name)
			replaced = append(replaced, name)
		}
	}
	for name, n := range nodes {
		if tag := UIDTag(n); tag != "" {
			l.tags[name] = tag
		}
	}
	sort.Strings(replaced)
	return replaced
}

// DoubtPins makes the pins the cache holds on a node unsure, and forgets
// those the node refused.
func (l *Ledger) DoubtPins(node string) {
	for img, s := range l.pins[node] {
		if s.Held() {
			l.SetPin(node, img, PinUnsure)
		} else {
			l.SetPin(node, img, NotPinned)
		}
	}
}

// NodeCount is the number of nodes the ledger has an entry for.
func (l *Ledger) NodeCount() int { return len(l.nodes()) }

// KeepOnly drops every entry, state and ownership, that is not a wanted
// (node, image) pair. Pins stay: only taking a pin away ends its record.
func (l *Ledger) KeepOnly(wanted func(node, image string) bool) {
	for node, m := range l.states {
		for img := range m {
			if !wanted(node, img) {
				delete(m, img)
			}
		}
		if len(m) == 0 {
			delete(l.states, node)
		}
	}
	for node, m := range l.owned {
		for img := range m {
			if !wanted(node, img) {
				l.SetOwned(node, img, false)
			}
		}
	}
}

// Fresh returns a ledger of the given epoch with no states, that keeps what
// this one knows beyond an operation: when the cache last removed images,
// which images its own pulls brought onto which node, and which it pinned
// (the refused pins are tried again).
func (l *Ledger) Fresh(epoch int64) *Ledger {
	out := New(epoch)
	out.RemovedAt = l.RemovedAt
	for node, m := range l.owned {
		for img := range m {
			out.SetOwned(node, img, true)
		}
	}
	for node, m := range l.pins {
		for img, s := range m {
			if s.Held() {
				out.SetPin(node, img, s)
			}
		}
	}
	for node, t := range l.tags {
		if len(out.owned[node]) > 0 || len(out.pins[node]) > 0 {
			out.tags[node] = t
		}
	}
	return out
}

// CarryOver returns the ledger a new operation of the given epoch starts
// from when it builds on this one (an update): the pairs pulled or present,
// and not the failures, so that they are tried again.
func (l *Ledger) CarryOver(epoch int64) *Ledger {
	out := l.Fresh(epoch)
	for node, m := range l.states {
		for img, s := range m {
			if s != Failed {
				out.Set(node, img, s)
			}
		}
		if t, ok := l.tags[node]; ok && len(out.states[node]) > 0 {
			out.tags[node] = t
		}
	}
	return out
}

// Continue starts a ledger for a new operation that goes on from this one:
// every state carried over as it is, failures too (which CarryOver drops,
// to try them again).
func (l *Ledger) Continue(epoch int64) *Ledger {
	out := l.CarryOver(epoch)
	for node, m := range l.states {
		for img, s := range m {
			if s == Failed {
				out.Set(node, img, s)
			}
		}
		if t, ok := l.tags[node]; ok && len(out.states[node]) > 0 {
			out.tags[node] = t
		}
	}
	return out
}

// sortedKeys lists a map's keys in order.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
