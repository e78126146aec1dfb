package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// TestWaitSaysWarm: wait ends 0 only for a cache Ready at its generation;
// a purged or failed one is Stalled, with its own exit code and why, though
// a purge's own status says Succeeded; a cache written by a controller that
// set no conditions reads by its status.
func TestWaitSaysWarm(t *testing.T) {
	cond := func(kind string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: kind, Status: status, Reason: reason, Message: msg, ObservedGeneration: 1,
			LastTransitionTime: metav1.NewTime(time.Now())}
	}
	cache := func(status v1alpha2.ImageCacheActionStatus, reason string, conds ...metav1.Condition) *v1alpha2.ImageCache {
		ic := newCache("web", nil, "registry.example/a:v1")
		ic.Generation, ic.Status.ObservedGeneration = 1, 1
		ic.Status.StartTime = &metav1.Time{Time: time.Now()}
		ic.Status.Status, ic.Status.Reason, ic.Status.Message = status, reason, "the message"
		ic.Status.Conditions = conds
		return ic
	}
	for _, tc := range []struct {
		name   string
		ic     *v1alpha2.ImageCache
		code   int
		stderr string
	}{
		{"ready", cache(v1alpha2.ImageCacheActionStatusSucceeded, v1alpha2.ImageCacheReasonCreate,
			cond(v1alpha2.ConditionReady, metav1.ConditionTrue, "Cached", "the message"),
			cond(v1alpha2.ConditionStalled, metav1.ConditionFalse, "Cached", "the message")), 0, ""},
		{"purged", cache(v1alpha2.ImageCacheActionStatusSucceeded, v1alpha2.ImageCacheReasonPurge,
			cond(v1alpha2.ConditionReady, metav1.ConditionFalse, "Purged", "Removed 2 of 2 images"),
			cond(v1alpha2.ConditionStalled, metav1.ConditionTrue, "Purged", "Removed 2 of 2 images; the cache pulls again once its spec changes")),
			ExitStalled, "Stalled: Purged: Removed 2 of 2 images; the cache pulls again"},
		{"failed", cache(v1alpha2.ImageCacheActionStatusFailed, v1alpha2.ImageCacheReasonCreate,
			cond(v1alpha2.ConditionReady, metav1.ConditionFalse, "PullsFailed", "1 failed"),
			cond(v1alpha2.ConditionStalled, metav1.ConditionTrue, "PullsFailed", "1 failed; failed pulls are tried again")),
			ExitStalled, "Stalled: PullsFailed: 1 failed"},
		{"no conditions, succeeded", cache(v1alpha2.ImageCacheActionStatusSucceeded, v1alpha2.ImageCacheReasonRefresh), 0, ""},
		{"no conditions, purged", cache(v1alpha2.ImageCacheActionStatusSucceeded, v1alpha2.ImageCacheReasonPurge), ExitStalled,
			"Succeeded (Purge): the message"},
		{"no conditions, aborted", cache(v1alpha2.ImageCacheActionStatusAborted, v1alpha2.ImageCacheReasonCreate), 1,
			"Aborted (Create): the message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, true, tc.ic)
			var out bytes.Buffer
			errOut, code := h.run(t, &out, "wait", "web", "-n", "apps", "--timeout", "5s")
			if code != tc.code || (tc.stderr != "" && !strings.Contains(errOut, tc.stderr)) {
				t.Errorf("exit %d, stderr %q; want %d, with %q", code, errOut, tc.code, tc.stderr)
			}
			if code == 0 && !strings.HasPrefix(out.String(), "imagecache.kubefledged.io/web Succeeded") {
				t.Errorf("stdout %q", out.String())
			}
		})
	}
}
