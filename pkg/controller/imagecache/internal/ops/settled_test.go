package ops

import (
	"testing"

	dto "github.com/prometheus/client_model/go"

	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/metrics"
)

// countSettled counts a pair once, in the pass that settles it: not again
// when the ledger it read held it already in the same state.
func TestCountSettledCountsOnlyWhatThePassSettled(t *testing.T) {
	read := ledger.New(9)
	read.Set("n1", "registry.example/a:v1", ledger.Pulled)
	read.Set("n1", "registry.example/b:v1", ledger.Failed)
	after := ledger.New(9)
	after.Set("n1", "registry.example/a:v1", ledger.Pulled)  // read already
	after.Set("n1", "registry.example/b:v1", ledger.Pulled)  // failed before, pulled now
	after.Set("n1", "registry.example/c:v1", ledger.Present) // new
	after.Set("n2", "registry.example/a:v1", ledger.Failed)  // new
	count := func(result string) float64 {
		var m dto.Metric
		if err := metrics.PullsTotal.WithLabelValues(result).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	pulled, present, failed := count(metrics.ResultPulled), count(metrics.ResultAlreadyPresent), count(metrics.ResultFailed)
	countSettled(ledger.NewReader(read.Encode()), after)
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
