package imagecache

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// TestPurgeIsOneOperation: a purge works on the nodes of its start. Once it
// is complete, a node it skipped (not Ready then) that turns Ready, and a
// node that joins, get no delete Job, and the status does not change: the
// cache is idle until refreshed or edited. A node that joins while the purge
// runs is not the purge's either.
func TestPurgeIsOneOperation(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))},
		newNode("node-a", withRuntime("containerd://2.0.0")), newNode("node-b", withRuntime("containerd://2.0.0"), notReady()))
	f.syncStarted("web")
	f.completeAll()
	f.sync("web")
	f.annotate("web", v1alpha2.AnnotationPurge)
	f.clock.Step(2 * time.Second)
	writes, _ := f.syncStarted("web")
	if jobs := createdJobs(writes); len(jobs) != 1 || jobs[0].Annotations[puller.AnnotationNode] != "node-a" || !puller.IsDeleteJob(jobs[0]) {
		t.Fatalf("purge: %s; want one delete Job, for node-a", describe(writes))
	}
	join := func(name string) {
		t.Helper()
		f.clock.Step(2 * time.Second)
		n := newNode(name, withRuntime("containerd://2.0.0"))
		n.CreationTimestamp = metav1.NewTime(f.clock.Now())
		if _, err := f.kube.CoreV1().Nodes().Create(f.ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		f.catchUp()
		f.clearActions()
	}
	// node-c joins while the purge runs.
	join("node-c")
	if writes, _ := f.sync("web"); len(createdJobs(writes)) != 0 {
		t.Fatalf("a node that joined during the purge: %s; want no delete Job", describe(writes))
	}
	f.completeAll()
	f.sync("web")
	st := f.imageCache("web").Status
	if st.Reason != v1alpha2.ImageCacheReasonPurge || st.Status != v1alpha2.ImageCacheActionStatusSucceeded ||
		st.Message != "Removed 1 of 2 images on 2 nodes; 1 skipped on 1 node not ready" {
		t.Fatalf("purge done: %s %s %q", st.Reason, st.Status, st.Message)
	}

	// node-b turns Ready, node-d joins: the purge is over.
	n, _ := f.kube.CoreV1().Nodes().Get(f.ctx, "node-b", metav1.GetOptions{})
	n.Status.Conditions[0].Status = corev1.ConditionTrue
	if _, err := f.kube.CoreV1().Nodes().UpdateStatus(f.ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	join("node-d")
	if writes, _ := f.sync("web"); len(writes) != 0 {
		t.Errorf("after the purge, a node turned Ready and one joined: %s; want no write", describe(writes))
	}

	// A refresh pulls again, on every node of now.
	f.annotate("web", v1alpha2.AnnotationRefresh)
	f.clock.Step(2 * time.Second)
	writes, _ = f.syncStarted("web")
	if jobs := createdJobs(writes); len(jobs) != 4 {
		t.Errorf("refresh after the purge: %s; want a pull Job on each of the 4 nodes", describe(writes))
	}
}
