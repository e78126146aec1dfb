package imagecache

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// TestNodesThePullsCannotRunOn: an all-nodes cache pulls onto the node that
// can take a pull, and skips, saying why, a Windows node, an s390x node (the
// helper image has neither), a cordoned node and one whose network is not
// ready: it Succeeds. The last two are pulled onto once they can be, and
// the first two never are.
func TestNodesThePullsCannotRunOn(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))},
		newNode("node-a", withPlatform("linux", "amd64")),
		newNode("win", withPlatform("windows", "amd64")),
		newNode("s390", withPlatform("linux", "s390x")),
		newNode("cordoned", withPlatform("linux", "arm64"), cordoned()),
		newNode("net-down", withPlatform("linux", "amd64"), withTaint("node.kubernetes.io/network-unavailable", corev1.TaintEffectNoSchedule)))
	writes, _ := f.syncStarted("web", wCreateJob)
	if jobs := createdJobs(writes); jobs[0].Annotations[puller.AnnotationNode] != "node-a" {
		t.Fatalf("create: %s; want a Job for node-a only", describe(writes))
	}
	f.completeAll()
	f.sync("web", wDeleteJob, wStatus)
	st := f.imageCache("web").Status
	want := "Pulled 1 of 5 images on 5 nodes; 4 skipped on 4 nodes (1 cordoned, 1 not Linux, " +
		"1 of an architecture the helper image lacks, 1 whose network is not ready)"
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Message != want || st.Pulls.Skipped != 4 || st.Pulls.Failed != 0 {
		t.Fatalf("create: %s %q, pulls %+v; want Succeeded %q", st.Status, st.Message, st.Pulls, want)
	}

	// The cordoned node is uncordoned, and the other's network comes up.
	for _, name := range []string{"cordoned", "net-down"} {
		n, err := f.kube.CoreV1().Nodes().Get(f.ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Spec.Unschedulable, n.Spec.Taints = false, nil
		if _, err := f.kube.CoreV1().Nodes().Update(f.ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f.catchUp()
	writes, _ = f.sync("web", times(wCreateJob, 2), wStatus)
	got := map[string]bool{}
	for _, j := range createdJobs(writes) {
		got[j.Annotations[puller.AnnotationNode]] = true
	}
	if !got["cordoned"] || !got["net-down"] {
		t.Fatalf("once schedulable: %s; want Jobs for cordoned and net-down", describe(writes))
	}
	f.completeAll()
	f.sync("web", times(wDeleteJob, 2), wStatus)
	st = f.imageCache("web").Status
	want = "Pulled 3 of 5 images on 5 nodes; 2 skipped on 2 nodes (1 not Linux, 1 of an architecture the helper image lacks)"
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Message != want {
		t.Errorf("after: %s %q, want %q", st.Status, st.Message, want)
	}
}

func withPlatform(os, arch string) nodeOption {
	return withLabels(corev1.LabelOSStable, os, corev1.LabelArchStable, arch)
}

func withTaint(key string, effect corev1.TaintEffect) nodeOption {
	return func(n *corev1.Node) { n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Effect: effect}) }
}

func cordoned() nodeOption { return func(n *corev1.Node) { n.Spec.Unschedulable = true } }
