package ledger

import (
	"maps"
	"slices"
	"sort"
)

// A cache's ledger over many nodes is kept in slices (ImageCacheSlice), each
// holding the entries of a bounded number of nodes, as a Service's endpoints
// are kept in EndpointSlices: a pass writes only the slices whose nodes'
// entries changed. Part cuts a ledger into the slices' parts, Join puts the
// parts read back together, and Assign says which slice holds which node.

// Part returns the part of the ledger that concerns the given nodes: their
// states, UID tags, owned images and pins, with the ledger's epoch and
// removal time.
func (l *Ledger) Part(nodes []string) *Ledger {
	out := New(l.Epoch)
	out.RemovedAt = l.RemovedAt
	for _, n := range nodes {
		if m, ok := l.states[n]; ok {
			out.states[n] = maps.Clone(m)
		}
		if t, ok := l.tags[n]; ok {
			out.tags[n] = t
		}
		if m, ok := l.owned[n]; ok {
			out.owned[n] = maps.Clone(m)
		}
		if m, ok := l.pins[n]; ok {
			out.pins[n] = maps.Clone(m)
		}
	}
	return out
}

// Nodes lists, in name order, the nodes the ledger has an entry for (states,
// owned images or pins).
func (l *Ledger) Nodes() []string { return l.nodes() }

// Join puts back together a ledger of the given epoch from its parts, as
// their slices were read. A part of another epoch (its slice not yet
// written by the operation, or left from an earlier one) brings what
// outlives an operation, its owned images and pins, and no states: its
// pulls count as not done. A node found in two parts (a slice copied by
// hand, or written twice) keeps its states only where both parts of the
// epoch record the same ones on the same node (a crash between the writes
// that move it from one slice to another), owns only what both parts say
// it owns, and holds every pin either holds: what is not sure is pulled
// again, never taken as done, owned nor let go.
func Join(epoch, removedAt int64, parts ...*Ledger) *Ledger {
	return join(epoch, removedAt, maps.Clone, parts)
}

// join is Join; keep copies what a part holds, or takes it as it is when
// the parts are the caller's to give (Open's, decoded for it).
func join(epoch, removedAt int64, keep func(map[string]State) map[string]State, parts []*Ledger) *Ledger {
	out := New(epoch)
	out.RemovedAt = removedAt
	seen := map[string]bool{}
	for _, p := range parts {
		for _, n := range p.entries() {
			if seen[n] {
				out.joinTwice(n, p)
				continue
			}
			seen[n] = true
			if p.Epoch == epoch {
				if m, ok := p.states[n]; ok {
					out.states[n] = keep(m)
				}
			}
			if m := p.owned[n]; len(m) > 0 {
				out.owned[n] = maps.Clone(m)
			}
			if m := p.pins[n]; len(m) > 0 {
				out.pins[n] = maps.Clone(m)
			}
			if t, ok := p.tags[n]; ok && (out.states[n] != nil || len(out.owned[n]) > 0 || len(out.pins[n]) > 0) {
				out.tags[n] = t
			}
		}
	}
	return out
}

// entries lists the nodes the part has an entry for, even one that holds
// nothing settled, owned nor pinned.
func (l *Ledger) entries() []string {
	seen := make(map[string]bool, len(l.tags))
	for _, n := range l.nodes() {
		seen[n] = true
	}
	for n := range l.tags {
		seen[n] = true
	}
	return sortedKeys(seen)
}

// joinTwice merges a second part's entry of a node into what Join has.
func (l *Ledger) joinTwice(n string, p *Ledger) {
	if p.Epoch != l.Epoch || !maps.Equal(l.states[n], p.states[n]) || p.tags[n] != l.tags[n] {
		delete(l.states, n)
	}
	for img := range l.owned[n] {
		if !p.owned[n][img] {
			l.SetOwned(n, img, false)
		}
	}
	for img, s := range p.pins[n] {
		switch cur := l.Pin(n, img); {
		case cur == NotPinned:
			l.SetPin(n, img, s)
		case s.Held() && cur != s:
			l.SetPin(n, img, PinUnsure)
		}
	}
	if t := p.tags[n]; t != l.tags[n] {
		// Two nodes of the same name: neither part is sure to be this
		// node's, and its entry holds pins and nothing owned.
		delete(l.owned, n)
		l.tags[n] = ""
	}
}

// Assign says which slice holds which node, from the slices as they are
// (current: each slice's nodes) and the nodes the ledger has now, with at
// most max nodes to a slice, as the EndpointSlice controller fills its
// slices: a node stays in its slice while it has an entry; a node new to
// the slices goes first to a slice that changes anyway (one that lost a
// node) with room, then, if the rest fit, into the one unchanged slice with
// room that they fit best, and only then into new slices (named by
// newName, from 0 up, skipping the names in use); a sparse slice (under a
// quarter full) whose nodes fit in the room of the others is emptied into
// them, one a pass, so that their number stays near the fewest. A slice
// left with no node is absent from the result: it is to be deleted.
func Assign(current map[string][]string, nodes []string, max int, newName func(i int) string) map[string][]string {
	want := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		want[n] = true
	}
	out := map[string][]string{}
	changed := map[string]bool{}
	placed := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(current)) {
		var keep []string
		for _, n := range current[name] {
			if want[n] && !placed[n] && len(keep) < max {
				keep = append(keep, n)
				placed[n] = true
			} else {
				changed[name] = true
			}
		}
		out[name] = keep
	}
	var fresh []string
	for _, n := range nodes {
		if !placed[n] {
			fresh = append(fresh, n)
		}
	}
	sort.Strings(fresh)
	// To the slices that change anyway, with room.
	for _, name := range slices.Sorted(maps.Keys(changed)) {
		room := max - len(out[name])
		take := min(room, len(fresh))
		out[name] = append(out[name], fresh[:take]...)
		fresh = fresh[take:]
	}
	// Into the one unchanged slice they fit best, if they fit one.
	if len(fresh) > 0 {
		best := ""
		for _, name := range slices.Sorted(maps.Keys(out)) {
			if room := max - len(out[name]); room >= len(fresh) && (best == "" || room < max-len(out[best])) {
				best = name
			}
		}
		if best != "" {
			out[best] = append(out[best], fresh...)
			fresh = nil
		}
	}
	// Then new slices.
	for i := 0; len(fresh) > 0; i++ {
		name := newName(i)
		if _, used := out[name]; used {
			continue
		}
		take := min(max, len(fresh))
		out[name] = append([]string(nil), fresh[:take]...)
		fresh = fresh[take:]
	}
	mergeSparse(out, max)
	for name, ns := range out {
		if len(ns) == 0 {
			delete(out, name)
		} else {
			sort.Strings(ns)
		}
	}
	return out
}

// mergeSparse empties the sparsest slice under a quarter full into the
// others' room, when it fits there.
func mergeSparse(out map[string][]string, max int) {
	sparse := ""
	for _, name := range slices.Sorted(maps.Keys(out)) {
		if n := len(out[name]); n > 0 && n*4 < max && (sparse == "" || n < len(out[sparse])) {
			sparse = name
		}
	}
	if sparse == "" {
		return
	}
	room := 0
	for name, ns := range out {
		if name != sparse {
			room += max - len(ns)
		}
	}
	if room < len(out[sparse]) {
		return
	}
	move := out[sparse]
	out[sparse] = nil
	// The fullest first: the fewest slices change.
	names := slices.Collect(maps.Keys(out))
	sort.Slice(names, func(i, j int) bool {
		if len(out[names[i]]) != len(out[names[j]]) {
			return len(out[names[i]]) > len(out[names[j]])
		}
		return names[i] < names[j]
	})
	for _, name := range names {
		if name == sparse || len(move) == 0 {
			continue
		}
		take := min(max-len(out[name]), len(move))
		out[name] = append(out[name], move[:take]...)
		move = move[take:]
	}
}
