package imagecache

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/metrics"
)

// TestPullMetricsFromTheKubeletsEvents: a pull the kubelet reports in its
// Pulled event adds its time to the histogram (pulled) and its size to the
// bytes counter, once; an image it found present adds nothing; a failed
// pull adds the time from its Pulling event (failed). Without events the
// metrics are left alone.
func TestPullMetricsFromTheKubeletsEvents(t *testing.T) {
	metrics.Register()
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx:1.27", "redis:7", "ghcr.io/org/app:v1",
		"ghcr.io/org/gone:v1"))}, newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	job := f.jobs()[0]
	pulledBefore := testutil.ToFloat64(metrics.PulledBytesTotal)
	pulledCount, failedCount := histogramCount(t, metrics.ResultPulled), histogramCount(t, metrics.ResultFailed)

	states := map[string]corev1.ContainerState{}
	var events []*corev1.Event
	pod := fledgedtest.PodOf(&job, "abcde")
	for i, img := range jobImages(t, &job) {
		c := job.Spec.Template.Spec.Containers[i]
		pulling := fledgedtest.PullingEvent(pod, c)
		pulling.FirstTimestamp = metav1.NewTime(t0)
		pulled := fledgedtest.PullingEvent(pod, c)
		pulled.Name, pulled.Reason = pulled.Name+".pulled", "Pulled"
		switch img {
		case "nginx:1.27":
			states[c.Name] = terminatedOK(t0.Add(3 * time.Second))
			pulled.Message = `Successfully pulled image "nginx:1.27" in 2.5s (2.5s including waiting). Image size: 1000 bytes.`
			events = append(events, pulling, pulled)
		case "redis:7":
			states[c.Name] = terminatedOK(t0.Add(3 * time.Second))
			pulled.Message = `Successfully pulled image "redis:7" in 500ms (3s including waiting). Image size: 234 bytes.`
			events = append(events, pulling, pulled)
		case "ghcr.io/org/app:v1":
			states[c.Name] = terminatedOK(t0.Add(3 * time.Second))
			pulled.Message = `Container image "ghcr.io/org/app:v1" already present on machine`
			events = append(events, pulled)
		case "ghcr.io/org/gone:v1":
			states[c.Name] = waiting("ErrImagePull", `rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/org/gone:v1": not found`)
			events = append(events, pulling)
		}
	}
	for _, e := range events {
		if _, err := f.kube.CoreV1().Events(testNS).Create(f.ctx, e, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f.podWith(job, states)
	f.clock.Step(4 * time.Second)
	f.sync("web", wDeleteJob, wPatchJob, wStatus)
	if got := testutil.ToFloat64(metrics.PulledBytesTotal) - pulledBefore; got != 1234 {
		t.Errorf("bytes pulled: %v, want 1234", got)
	}
	if got := histogramCount(t, metrics.ResultPulled) - pulledCount; got != 2 {
		t.Errorf("pulled pulls observed: %d, want 2", got)
	}
	if got := histogramCount(t, metrics.ResultFailed) - failedCount; got != 1 {
		t.Errorf("failed pulls observed: %d, want 1", got)
	}
	// Nothing new: nothing observed again.
	f.sync("web")
	if got := testutil.ToFloat64(metrics.PulledBytesTotal) - pulledBefore; got != 1234 {
		t.Errorf("bytes pulled after a pass with nothing new: %v, want 1234", got)
	}
}

// histogramCount is how many pulls of a result the histogram has seen.
func histogramCount(t *testing.T, result string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := metrics.ImagePullSeconds.WithLabelValues(result).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}
