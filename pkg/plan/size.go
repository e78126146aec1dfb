package plan

import (
	"fmt"
	"maps"

	"kubefledged.io/kube-fledged/pkg/ledger"
)

// MaxLedgerBytes is the most the ledger of one cache may take. A cache
// whose nodes × images need more is refused (TooLarge): with node names of
// 30 characters, about 5,300 nodes × 100 images, or 2,000 nodes × 512
// images.
const MaxLedgerBytes = 720 << 10

// LedgerSize bounds the bytes the ledger of a plan adds to the object, once
// every pair is settled: the nodes the plan wants images on, each sized by
// the whole table, which holds the images the plan wants and those the
// ledger owns beyond them; and, for a cache that pins, every pair pinned.
func LedgerSize(p *Plan, led *ledger.Ledger) int {
	table := map[string]bool{}
	for _, w := range p.Nodes {
		for _, wi := range w.Images {
			table[wi.Key] = true
		}
	}
	for _, node := range led.OwnedNodes() {
		for _, img := range led.OwnedOn(node) {
			table[img] = true
		}
	}
	nodes := func(yield func(string) bool) {
		for name := range p.Nodes {
			if !yield(name) {
				return
			}
		}
		for _, name := range led.OwnedNodes() {
			if p.Nodes[name] == nil && !yield(name) {
				return
			}
		}
	}
	size := ledger.EstimateSize(nodes, maps.Keys(table))
	if p.Pin {
		// A pinning cache records its pins too, on the nodes it wants
		// images on.
		size += ledger.EstimatePinsSize(maps.Keys(p.Nodes), len(table))
	}
	return size
}

// TooLarge says why a plan is more than one object can record, or "".
func TooLarge(p *Plan, led *ledger.Ledger) string {
	size := LedgerSize(p, led)
	if size <= MaxLedgerBytes {
		return ""
	}
	return fmt.Sprintf("The cache is too large: %d nodes and %d images need about %d KiB to record, over the %d KiB "+
		"one ImageCache can hold; split it into several caches, by node selector or by images",
		len(p.Nodes), len(p.SpecKeys), size>>10, MaxLedgerBytes>>10)
}
