//go:build e2e

package e2e

import (
	"testing"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/ledger"
)

// ledgerOf reads a cache's ledger as the controller does: the header in its
// status, the entries in its slices.
func ledgerOf(t *testing.T, ic *v1alpha2.ImageCache) *ledger.Ledger {
	t.Helper()
	return fledgedtest.MustLoadLedger(t, fledged, ic)
}
