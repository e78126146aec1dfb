//go:build e2e

package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// startDeadline is the --job-start-deadline of these tests: short, so that
// they are quick; they also set a pull deadline far above it, so that it is
// the start deadline that ends the Jobs.
const startDeadline = "15s"

// assertNeverStarted checks that every failure of the cache has this reason
// and a message with want in it, and that the throttle gave back every slot.
func assertNeverStarted(t *testing.T, p *controllerProc, ic *v1alpha2.ImageCache, reasons []string, want string) {
	t.Helper()
	if ic.Status.Pulls.Succeeded != 0 || ic.Status.Pulls.Failed != ic.Status.Pulls.Desired || ic.Status.Pulls.Desired == 0 {
		t.Errorf("pulls %+v, want every one failed", ic.Status.Pulls)
	}
	for img, list := range ic.Status.Failures {
		if len(list) > 0 {
			t.Logf("%s on %s: %s: %s", img, list[0].Node, list[0].Reason, list[0].Message)
		}
		for _, f := range list {
			if !slices.Contains(reasons, f.Reason) || !strings.Contains(f.Message, want) {
				t.Errorf("failure of %s on %s: %s %q, want one of %v with %q", img, f.Node, f.Reason, f.Message, reasons, want)
			}
		}
	}
	waitFor(t, 30*time.Second, "the throttle to give back every slot", func() bool {
		return p.metric(t, "kubefledged_jobs_in_flight") == 0
	})
}

// TestMissingServiceAccount: --service-account-name names an account the
// namespace does not have, so the Job controller cannot create any pod. At
// the start deadline the pulls fail with its FailedCreate message.
func TestMissingServiceAccount(t *testing.T) {
	ns := newNamespace(t, "no-sa")
	p := startController(t, "--service-account-name=no-such-account", "--job-start-deadline="+startDeadline, "--image-pull-deadline-duration=5m")
	ic := applyAndTime(t, ns, `
  - images: [docker.io/library/nginx:1.27]
    nodeSelector: {tier: backend}
`, v1alpha2.ImageCacheActionStatusFailed)
	assertNeverStarted(t, p, ic, []string{"FailedCreate"}, `serviceaccount "no-such-account" not found`)
}

// TestLimitRangeRefusesPods: a LimitRange whose minimum CPU is above the
// pull pods' requests makes the Job controller's pod creates fail; the
// pulls fail with the LimitRange's message.
func TestLimitRangeRefusesPods(t *testing.T) {
	ns := newNamespace(t, "limits")
	kubectlIn(t, `apiVersion: v1
kind: LimitRange
metadata: {name: big-containers-only}
spec:
  limits:
  - type: Container
    min: {cpu: 50m}
`, "apply", "-n", ns, "-f", "-")
	p := startController(t, "--job-start-deadline="+startDeadline, "--image-pull-deadline-duration=5m")
	ic := applyAndTime(t, ns, `
  - images: [docker.io/library/nginx:1.27]
    nodeSelector: {tier: backend}
`, v1alpha2.ImageCacheActionStatusFailed)
	assertNeverStarted(t, p, ic, []string{"FailedCreate"}, "minimum cpu usage per Container is 50m")
}
