package imagecache

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// TestTimeLeftInTheMessage: while a create runs, its message says about how
// long is left once enough has settled; a pass that settles nothing keeps
// the estimate (no write for the clock alone); the finished operation says
// nothing of it.
func TestTimeLeftInTheMessage(t *testing.T) {
	var nodes []*corev1.Node
	for i := range 20 {
		nodes = append(nodes, newNode(fmt.Sprintf("node-%02d", i)))
	}
	cfg := testConfig()
	cfg.Puller.PullDeadline = 10 * time.Minute
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, nodes...)
	f.syncStarted("web", times(wCreateJob, 20))
	jobs := f.jobs()
	for _, j := range jobs[:10] {
		f.completeJob(j)
	}
	f.clock.Step(time.Minute)
	f.syncOnly("web", wDeleteJob, wStatus)
	if got, want := f.imageCache("web").Status.Message, "Pulled 10 of 20 images on 20 nodes; 10 pending; about 1 minute left"; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
	f.clock.Step(time.Minute)
	if writes, _ := f.sync("web"); len(writes) != 0 {
		t.Errorf("a pass that settled nothing wrote %s", describe(writes))
	}
	for _, j := range jobs[10:] {
		f.completeJob(j)
	}
	f.syncOnly("web", wDeleteJob, wStatus)
	if got, want := f.imageCache("web").Status.Message, "Pulled 20 of 20 images on 20 nodes"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}
