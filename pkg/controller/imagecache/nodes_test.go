package imagecache

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/trim"
)

// TestTrimmedNodeCountsTagAndDigestAsPresent: a node that reports an image
// by tag and by digest has both counted present after the trim (the fixture
// trims nodes as the binary's informer does), and nothing else.
func TestTrimmedNodeCountsTagAndDigestAsPresent(t *testing.T) {
	digest := "sha256:" + strings.Repeat("b", 64)
	cfg := testConfig()
	// BusyNode's taint.
	cfg.Puller.Tolerations = append(cfg.Puller.Tolerations, corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual,
		Value: "web", Effect: corev1.TaintEffectNoSchedule})
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web",
		withImages("registry.example.com/team-1/service-001:1.2.1", "registry.example.com/team-2/service-002@sha256:"+fmt.Sprintf("%064x", 3),
			"ghcr.io/org/app@"+digest, "ghcr.io/org/app:2", "redis:7"))},
		newNode("node-a", withNodeImages("ghcr.io/org/app@"+digest, "ghcr.io/org/app:1")),
		fledgedtest.BusyNode("node-b", 50))
	nodeB, err := f.c.nodeLister.Get("node-b")
	if err != nil {
		t.Fatal(err)
	}
	if p := trim.NodeImages(nodeB); p.Len() != 100 || len(nodeB.Status.Images) != 1 {
		t.Fatalf("the fixture's node-b holds %d names, want 100", p.Len())
	}
	writes, _ := f.syncStarted("web", times(wCreateJob, 2))
	got := map[string][]string{}
	for _, job := range createdJobs(writes) {
		got[job.Spec.Template.Spec.NodeSelector["kubernetes.io/hostname"]] = jobImages(t, job)
	}
	want := map[string][]string{
		"node-a": {"registry.example.com/team-1/service-001:1.2.1", "registry.example.com/team-2/service-002@sha256:" + fmt.Sprintf("%064x", 3),
			"ghcr.io/org/app:2", "redis:7"},
		"node-b": {"ghcr.io/org/app@" + digest, "ghcr.io/org/app:2", "redis:7"},
	}
	for n := range want {
		want[n], got[n] = sortStrings(want[n]), sortStrings(got[n])
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("images pulled per node (-want +got):\n%s", diff)
	}
	if st := f.imageCache("web").Status; st.Pulls.AlreadyPresent != 3 {
		t.Errorf("already present: %d, want 3 (one on node-a, two on node-b)", st.Pulls.AlreadyPresent)
	}
}

// TestNodeImagesChangeEnqueues: a node whose set of images changes enqueues
// the caches it matters to; a status update that changes only what the trim
// drops (image sizes, heartbeats, another condition) does not.
func TestNodeImagesChangeEnqueues(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))})
	logger, _ := ktesting.NewTestContext(t)
	old := fledgedtest.BusyNode("node-a", 50)
	same := old.DeepCopy()
	same.ResourceVersion = "2"
	same.Status.Images[0].SizeBytes++
	same.Status.Conditions[0].Message = "changed"
	f.c.nodeChanged(logger, trim.Node(old), trim.Node(same))
	if n := f.c.queue.Len(); n != 0 {
		t.Fatalf("a heartbeat enqueued %d caches", n)
	}
	added := same.DeepCopy()
	added.ResourceVersion = "3"
	added.Status.Images = append(added.Status.Images, corev1.ContainerImage{Names: []string{"docker.io/library/nginx:latest"}})
	f.c.nodeChanged(logger, trim.Node(same), trim.Node(added))
	if n := f.c.queue.Len(); n != 1 {
		t.Fatalf("a node that reports a new image enqueued %d caches, want 1", n)
	}
	if key, _ := f.c.queue.Get(); key.Name != "web" {
		t.Errorf("enqueued %s", key)
	}
}
