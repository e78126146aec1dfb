package ops

import (
	"fmt"
	"testing"

	"kubefledged.io/kube-fledged/pkg/ledger"
)

// What counting one sync's settled pairs costs over a cache of 5,000 nodes
// x 10 images: reading the encoded ledger in place (settled), against
// decoding it whole first, as a sync did before.
func BenchmarkCountSettled(b *testing.B) {
	led := ledger.New(1)
	for n := range 5000 {
		for i := range 10 {
			led.Set(fmt.Sprintf("node-%04d", n), fmt.Sprintf("registry.example/app-%02d:v1", i), ledger.Pulled)
		}
	}
	enc := led.Encode()
	b.Run("in place", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			countSettled(ledger.NewReader(enc), led)
		}
	})
	b.Run("decoded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			countSettled(ledger.ReaderOf(ledger.Decode(enc)), led)
		}
	})
}
