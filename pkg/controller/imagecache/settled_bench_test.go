package imagecache

import (
	"fmt"
	"testing"
)

// What counting one sync's settled pairs costs over a cache of 5,000 nodes
// x 10 images: reading the encoded ledger in place (settled), against
// decoding it whole first, as a sync did before.
func BenchmarkCountSettled(b *testing.B) {
	led := newLedger(1)
	for n := range 5000 {
		for i := range 10 {
			led.set(fmt.Sprintf("node-%04d", n), fmt.Sprintf("registry.example/app-%02d:v1", i), statePulled)
		}
	}
	enc := led.encode()
	b.Run("in place", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			countSettled(readSettled(enc), led)
		}
	})
	b.Run("decoded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			countSettled(settled{dec: decodeLedger(enc)}, led)
		}
	})
}
