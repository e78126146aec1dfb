package imagecache

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/throttle"
	"kubefledged.io/kube-fledged/pkg/ledger"
)

func TestNextLook(t *testing.T) {
	completed := func(ago time.Duration) *metav1.Time { c := metav1.NewTime(t0.Add(-ago)); return &c }
	for _, tc := range []struct {
		name      string
		checkAt   time.Time
		throttled bool
		complete  bool
		reason    string
		completed *metav1.Time
		refresh   time.Duration
		want      time.Duration
	}{
		{name: "nothing to wait for", want: 0},
		{name: "a running Job's deadline", checkAt: t0.Add(42 * time.Second), want: 42 * time.Second},
		{name: "a deadline passed: soon, not at once", checkAt: t0.Add(-time.Minute), want: 100 * time.Millisecond},
		{name: "waiting for a slot", throttled: true, want: throttle.ThrottledRetry},
		{name: "a slot, or a deadline sooner", throttled: true, checkAt: t0.Add(2 * time.Second), want: 2 * time.Second},
		{name: "complete: the next refresh", complete: true, reason: v1alpha2.ImageCacheReasonCreate,
			completed: completed(5 * time.Minute), refresh: 15 * time.Minute, want: 10 * time.Minute},
		{name: "complete, refresh overdue: a second", complete: true, reason: v1alpha2.ImageCacheReasonRefresh,
			completed: completed(time.Hour), refresh: 15 * time.Minute, want: time.Second},
		{name: "complete, refresh off", complete: true, reason: v1alpha2.ImageCacheReasonCreate,
			completed: completed(time.Minute), want: 0},
		{name: "complete after a purge: no refresh", complete: true, reason: v1alpha2.ImageCacheReasonPurge,
			completed: completed(time.Minute), refresh: 15 * time.Minute, want: 0},
		{name: "not complete: no refresh", reason: v1alpha2.ImageCacheReasonCreate, completed: completed(time.Minute),
			refresh: 15 * time.Minute, checkAt: t0.Add(time.Hour), want: time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.RefreshFrequency = tc.refresh
			c := &Controller{cfg: cfg}
			ic := &v1alpha2.ImageCache{Status: v1alpha2.ImageCacheStatus{Reason: tc.reason, CompletionTime: tc.completed}}
			s := pass.NewPass(cache.ObjectName{}, ic, t0, nil, ledger.Reader{})
			s.LookAt(tc.checkAt)
			if got := c.nextLook(s, tc.complete, tc.throttled); got != tc.want {
				t.Errorf("nextLook = %v, want %v", got, tc.want)
			}
		})
	}
}
