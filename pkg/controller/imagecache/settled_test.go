package imagecache

import (
	"fmt"
	"math/rand/v2"
	"testing"

	dto "github.com/prometheus/client_model/go"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/metrics"
)

// The states read in place from the encoded ledger (settled) are the ones
// decodeLedger decodes, for tables of every length around the encoding's
// byte and base64 group boundaries, and for pairs the ledger does not hold.
func TestSettledReadsWhatDecodeLedgerDecodes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for images := 1; images <= 27; images++ {
		led := newLedger(42)
		var table []string
		for i := range images {
			table = append(table, fmt.Sprintf("registry.example/app-%02d:v1", i))
		}
		for n := range 6 {
			node := fmt.Sprintf("node-%d", n)
			led.tags[node] = "0123abcd"
			for _, img := range table {
				led.set(node, img, pairState(r.IntN(4)))
			}
		}
		enc := led.encode()
		dec, in := decodeLedger(enc), readSettled(enc)
		if in.epoch() != 42 {
			t.Fatalf("%d images: epoch %d, want 42", images, in.epoch())
		}
		for n := range 7 { // node-6 is not in the ledger
			node := fmt.Sprintf("node-%d", n)
			for _, img := range append(table, "registry.example/other:v1") {
				if got, want := in.get(node, img), dec.get(node, img); got != want {
					t.Errorf("%d images: %s %s: %d, want %d (as decoded)", images, node, img, got, want)
				}
				if got, want := in.get(node, img), led.get(node, img); got != want {
					t.Errorf("%d images: %s %s: %d, want %d (as set)", images, node, img, got, want)
				}
			}
		}
	}
}

// A damaged or missing ledger reads as nothing settled, never as a crash.
func TestSettledOfADamagedLedger(t *testing.T) {
	l := &v1alpha2.PullLedger{Epoch: 7, Images: []string{"a", "b", "c", "d", "e"}, Nodes: map[string]string{
		"short":   "B",     // one character: no whole byte
		"invalid": "!!!!",  // not base64
		"empty":   ".tag0", // no states, a tag
	}}
	s := readSettled(l)
	for _, node := range []string{"short", "invalid", "empty", "absent"} {
		for _, img := range l.Images {
			if got := s.get(node, img); got != stateUnsettled {
				t.Errorf("%s %s: %d, want unsettled", node, img, got)
			}
		}
	}
	if got := (settled{}).get("n", "a"); got != stateUnsettled {
		t.Errorf("no ledger: %d, want unsettled", got)
	}
	if got := readSettled(nil); got.epoch() != 0 || got.get("n", "a") != stateUnsettled {
		t.Errorf("nil ledger: %+v", got)
	}
}

// countSettled counts a pair once, in the pass that settles it: not again
// when the ledger it read held it already in the same state.
func TestCountSettledCountsOnlyWhatThePassSettled(t *testing.T) {
	read := newLedger(9)
	read.set("n1", "a", statePulled)
	read.set("n1", "b", stateFailed)
	after := newLedger(9)
	after.set("n1", "a", statePulled)  // read already
	after.set("n1", "b", statePulled)  // failed before, pulled now
	after.set("n1", "c", statePresent) // new
	after.set("n2", "a", stateFailed)  // new
	count := func(result string) float64 {
		var m dto.Metric
		if err := metrics.PullsTotal.WithLabelValues(result).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	pulled, present, failed := count(metrics.ResultPulled), count(metrics.ResultAlreadyPresent), count(metrics.ResultFailed)
	countSettled(readSettled(read.encode()), after)
	if got := count(metrics.ResultPulled) - pulled; got != 1 {
		t.Errorf("pulled counted %v, want 1", got)
	}
	if got := count(metrics.ResultAlreadyPresent) - present; got != 1 {
		t.Errorf("already present counted %v, want 1", got)
	}
	if got := count(metrics.ResultFailed) - failed; got != 1 {
		t.Errorf("failed counted %v, want 1", got)
	}
}
