package ops

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestNextOperation(t *testing.T) {
	started := metav1.NewTime(t0.Add(-time.Hour))
	done := metav1.NewTime(t0.Add(-30 * time.Minute))
	status := func(reason string, st v1alpha2.ImageCacheActionStatus, complete bool) v1alpha2.ImageCacheStatus {
		s := v1alpha2.ImageCacheStatus{Reason: reason, Status: st, StartTime: &started, ObservedGeneration: 1}
		if complete {
			s.CompletionTime = &done
		}
		return s
	}
	succeeded := status(v1alpha2.ImageCacheReasonCreate, v1alpha2.ImageCacheActionStatusSucceeded, true)
	for _, tc := range []struct {
		name        string
		annotations []string
		generation  int64
		status      v1alpha2.ImageCacheStatus
		refresh     time.Duration
		want        string
	}{
		{name: "never started", status: v1alpha2.ImageCacheStatus{}, want: v1alpha2.ImageCacheReasonCreate},
		{name: "never started, a purge asked", annotations: []string{v1alpha2.AnnotationPurge},
			status: v1alpha2.ImageCacheStatus{}, want: v1alpha2.ImageCacheReasonCreate},
		{name: "done, nothing asked", status: succeeded, want: ""},
		{name: "spec changed", generation: 2, status: succeeded, want: v1alpha2.ImageCacheReasonUpdate},
		{name: "refresh asked", annotations: []string{v1alpha2.AnnotationRefresh}, status: succeeded,
			want: v1alpha2.ImageCacheReasonRefresh},
		{name: "refresh asked, running it", annotations: []string{v1alpha2.AnnotationRefresh},
			status: status(v1alpha2.ImageCacheReasonRefresh, v1alpha2.ImageCacheActionStatusProcessing, false), want: ""},
		{name: "purge asked", annotations: []string{v1alpha2.AnnotationPurge}, status: succeeded,
			want: v1alpha2.ImageCacheReasonPurge},
		{name: "purge asked, running it", annotations: []string{v1alpha2.AnnotationPurge},
			status: status(v1alpha2.ImageCacheReasonPurge, v1alpha2.ImageCacheActionStatusProcessing, false), want: ""},
		{name: "purge asked and spec changed: the purge", annotations: []string{v1alpha2.AnnotationPurge}, generation: 2,
			status: succeeded, want: v1alpha2.ImageCacheReasonPurge},
		{name: "spec changed and refresh asked: the update", annotations: []string{v1alpha2.AnnotationRefresh}, generation: 2,
			status: succeeded, want: v1alpha2.ImageCacheReasonUpdate},
		{name: "periodic refresh due", status: succeeded, refresh: 15 * time.Minute, want: v1alpha2.ImageCacheReasonRefresh},
		{name: "periodic refresh not due", status: succeeded, refresh: time.Hour, want: ""},
		{name: "periodic refresh, off", status: succeeded, refresh: 0, want: ""},
		{name: "periodic refresh, still processing", refresh: 15 * time.Minute,
			status: status(v1alpha2.ImageCacheReasonCreate, v1alpha2.ImageCacheActionStatusProcessing, true), want: ""},
		{name: "periodic refresh, after a purge: none", refresh: 15 * time.Minute,
			status: status(v1alpha2.ImageCacheReasonPurge, v1alpha2.ImageCacheActionStatusSucceeded, true), want: ""},
		{name: "periodic refresh, after a failure", refresh: 15 * time.Minute,
			status: status(v1alpha2.ImageCacheReasonCreate, v1alpha2.ImageCacheActionStatusFailed, true),
			want:   v1alpha2.ImageCacheReasonRefresh},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ic := fledgedtest.NewImageCache("team-a", "web", fledgedtest.WithImages("nginx"))
			if tc.generation != 0 {
				ic.Generation = tc.generation
			}
			if len(tc.annotations) > 0 {
				ic.Annotations = map[string]string{}
				for _, a := range tc.annotations {
					ic.Annotations[a] = ""
				}
			}
			c := &Ops{cfg: Config{RefreshFrequency: tc.refresh}}
			if got := c.nextOperation(ic, &tc.status, t0); got != tc.want {
				t.Errorf("nextOperation = %q, want %q", got, tc.want)
			}
		})
	}
}
