//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/test/framework"
)

// startTestRegistry starts a registry on the real node's test registry
// address, with its storage in dir, and stops it, by PID, when the test
// ends (or before, by the stop returned).
func (rn *realNode) startTestRegistry(t *testing.T, dir string) (stop func()) {
	t.Helper()
	if rn.testRegistry == "" {
		t.Fatal("the real node's env file names no test registry: bring it up again with hack/real-node-up.sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := framework.StartRegistryAt(ctx, rn.testRegistry, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r.Stop
}

// TestRealNodeRegistryComesBack: the registry is stopped and a cache of one
// of its images is created; the pull fails with connection refused, which
// may pass, so the cache stays Processing, "retrying" with the kubelet's
// message and the next try, for the 3 minutes the registry is away. Once
// the registry is back, the cache Succeeds within a minute, with no refresh
// and no edit, and the image is in the node's containerd. The longest wait
// between tries is 30s here (--pull-retry-max-backoff; 5m by default).
func TestRealNodeRegistryComesBack(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-retry")
	dir := t.TempDir()
	stop := rn.startTestRegistry(t, dir)
	ref := rn.testRegistry + "/e2e/comes-back:v1"
	img, err := framework.WithLabel(testImages["shell"], "kubefledged.io/e2e-ref", ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := framework.PushImage(img, ref, "", ""); err != nil {
		t.Fatal(err)
	}
	stop()
	if rn.present(t, ref) {
		t.Fatalf("%s is on the node before the test", ref)
	}

	p := rn.controller(t, "--pull-retry-max-backoff=30s")
	created := time.Now()
	applyCache(t, ns, imageList(ref)+onRealNode(rn))
	retrying := ""
	// The registry is away for 3 minutes; the cache must not fail meanwhile.
	for time.Since(created) < 3*time.Minute {
		ic := getIC(t, ns, "app")
		if ic.Status.Status == v1alpha2.ImageCacheActionStatusFailed || ic.Status.Status == v1alpha2.ImageCacheActionStatusSucceeded {
			t.Fatalf("with the registry away, the cache is %s after %v: %s; failures %+v", ic.Status.Status,
				time.Since(created).Round(time.Second), ic.Status.Message, ic.Status.Failures)
		}
		if strings.Contains(ic.Status.Message, "retrying on "+rn.name+" after ErrImagePull") && retrying == "" {
			retrying = ic.Status.Message
			t.Logf("after %v: %s", time.Since(created).Round(time.Second), retrying)
		}
		time.Sleep(2 * time.Second)
	}
	if retrying == "" {
		t.Fatalf("the status never said the pull was retrying; it says %q", getIC(t, ns, "app").Status.Message)
	}
	if !strings.Contains(retrying, "connection refused") || !strings.Contains(retrying, "next try at ") {
		t.Errorf("the retrying message does not give the kubelet's error and the next try: %q", retrying)
	}
	tries := p.metricSum(t, "kubefledged_pull_retries_total")
	t.Logf("%v tries failed while the registry was away", tries)
	if tries < 3 {
		t.Errorf("kubefledged_pull_retries_total is %v after 3 minutes, want the backoff's 3 or more", tries)
	}

	rn.startTestRegistry(t, dir)
	back := time.Now()
	ic := waitIC(t, ns, "app", 3*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	took := time.Since(back)
	t.Logf("Succeeded %v after the registry came back (%v after the cache was created): %s", took.Round(100*time.Millisecond),
		time.Since(created).Round(time.Second), ic.Status.Message)
	if took > time.Minute {
		t.Errorf("the cache Succeeded %v after the registry came back, want within a minute", took.Round(time.Second))
	}
	if ic.Status.Pulls.AlreadyPresent != 0 {
		t.Errorf("pulls %+v: the image a try brought is counted already present", ic.Status.Pulls)
	}
	if ic.Status.Reason != v1alpha2.ImageCacheReasonCreate || len(ic.Status.Failures) != 0 {
		t.Errorf("status %s %s, failures %+v: want the create itself to succeed, with no failure", ic.Status.Reason, ic.Status.Status, ic.Status.Failures)
	}
	if !rn.present(t, ref) {
		t.Errorf("%s is not in the node's containerd", ref)
	}
}
