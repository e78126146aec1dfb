package ledger

import (
	"encoding/base64"
	"slices"
	"sort"
	"strings"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	imgs "kubefledged.io/kube-fledged/pkg/images"
)

// nodeEntry is one node's entry of status.ledger.nodes, split:
// "STATES[.TAG[.OWNED]]".
type nodeEntry struct{ states, tag, owned string }

func splitEntry(enc string) nodeEntry {
	var e nodeEntry
	e.states, enc, _ = strings.Cut(enc, ".")
	e.tag, e.owned, _ = strings.Cut(enc, ".")
	return e
}

// Decode reads status.ledger. Anyone with rights on the status can write it,
// so it trusts nothing: an entry whose states do not decode has none (its
// pairs are pulled again), and owned bits that do not decode own nothing.
func Decode(l *v1alpha2.PullLedger) *Ledger {
	if l == nil {
		return New(0)
	}
	out := New(l.Epoch)
	out.RemovedAt = l.RemovedAt
	if CheckFormat(l) != nil {
		// Written by a newer controller (this one runs after a
		// downgrade): nothing in it is read, so the operation's pulls
		// are done again and the cache owns no image it could remove.
		return out
	}
	table := tableOf(l.Images)
	for node, enc := range l.Nodes {
		e := splitEntry(enc)
		out.tags[node] = e.tag
		if m := decodeStates(table, e.states); len(m) > 0 {
			out.states[node] = m
		}
		if m := decodeOwned(table, e.owned); len(m) > 0 {
			out.owned[node] = m
		}
	}
	for node, enc := range l.Pins {
		for img, s := range decodeStates(table, enc) {
			out.SetPin(node, img, PinState(s))
		}
	}
	return out
}

// tableOf returns the table of images with what is not a normalised image
// reference (the only thing Encode writes there) blanked: a name that only
// a hand edit put there is no image of the cache's, and its places read as
// nothing, never as an image to remove.
func tableOf(images []string) []string {
	out := images
	for i, img := range images {
		if key, err := imgs.Normalize(img); err != nil || key != img {
			if len(out) > 0 && &out[0] == &images[0] {
				out = slices.Clone(images) // the status's own table stays as it is
			}
			out[i] = ""
		}
	}
	return out
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
		if img == "" {
			continue // not an image (tableOf)
		}
		if i/8 < len(bits) && bits[i/8]&(1<<(i%8)) != 0 {
			m[img] = true
		} else {
			delete(m, img) // a later place of the same image wins
		}
	}
	return m
}

// decodeStates decodes one node's states: the state of each image of the
// table that is settled. A damaged entry only means "pull again".
func decodeStates(images []string, enc string) map[string]State {
	bits, err := base64.RawStdEncoding.DecodeString(enc)
	if err != nil {
		return nil
	}
	m := map[string]State{}
	for i, img := range images {
		if img == "" {
			continue // not an image (tableOf)
		}
		if s := stateAt(bits, i); s != Unsettled {
			m[img] = s
		} else {
			delete(m, img) // a later place of the same image wins
		}
	}
	return m
}

// Encode writes the ledger in its compact status form; the output depends
// only on the contents, so an unchanged ledger compares equal.
func (l *Ledger) Encode() *v1alpha2.PullLedger { return l.encodeNodes(l.nodes()) }

// encodeNodes writes the entries of the given nodes (those with states,
// owned images or pins), with a table of the images they name alone: what
// l.Part(nodes).Encode() writes, without copying the part.
func (l *Ledger) encodeNodes(nodes []string) *v1alpha2.PullLedger {
	index := map[string]int{}
	for _, n := range nodes {
		for img := range l.states[n] {
			index[img] = 0
		}
		for img := range l.owned[n] {
			index[img] = 0
		}
		for img := range l.pins[n] {
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
	out := &v1alpha2.PullLedger{Epoch: l.Epoch, Images: images, RemovedAt: l.RemovedAt}
	for _, node := range nodes {
		_, st := l.states[node]
		_, ow := l.owned[node]
		m, pi := l.pins[node]
		if !st && !ow && !pi {
			continue
		}
		if pi {
			if out.Pins == nil {
				out.Pins = map[string]string{}
			}
			bits := make([]byte, (len(images)+3)/4)
			for img, s := range m {
				i := index[img]
				bits[i/4] |= byte(s) << (2 * (i % 4))
			}
			out.Pins[node] = base64.RawStdEncoding.EncodeToString(bits)
		}
		bits := make([]byte, (len(images)+3)/4)
		for img, s := range l.states[node] {
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
		if out.Nodes == nil {
			out.Nodes = make(map[string]string, len(nodes))
		}
		out.Nodes[node] = entry
	}
	if len(out.Images) == 0 {
		out.Images = nil
	}
	return out
}

// nodes lists the nodes that have states, owned images or pins.
func (l *Ledger) nodes() []string {
	seen := make(map[string]bool, len(l.states)+len(l.owned))
	for n := range l.states {
		seen[n] = true
	}
	for n := range l.owned {
		seen[n] = true
	}
	for n := range l.pins {
		seen[n] = true
	}
	return sortedKeys(seen)
}
