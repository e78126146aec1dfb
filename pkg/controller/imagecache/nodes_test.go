package imagecache

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/images"
)

// busyNode is a node as a busy kubelet reports it: n images, each by tag and
// by digest, with the rest of a real node's status.
func busyNode(name string, n int) *corev1.Node {
	node := newNode(name, withLabels("topology.kubernetes.io/zone", "zone-a"), withRuntime("containerd://2.0.0"))
	node.Annotations = map[string]string{"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
	node.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate}}
	node.Spec.PodCIDR = "10.244.1.0/24"
	node.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "web", Effect: corev1.TaintEffectNoSchedule}}
	node.Status.Conditions = append([]corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse,
		Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"}}, node.Status.Conditions...)
	node.Status.Conditions[1].Message = "kubelet is posting ready status"
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.10"}}
	node.Status.NodeInfo.KubeletVersion = "v1.37.2"
	for i := range n {
		repo := fmt.Sprintf("registry.example.com/team-%d/service-%03d", i%7, i)
		node.Status.Images = append(node.Status.Images, corev1.ContainerImage{
			Names:     []string{repo + "@sha256:" + fmt.Sprintf("%064x", i+1), repo + ":1.2." + fmt.Sprint(i)},
			SizeBytes: int64(10_000_000 + i),
		})
	}
	return node
}

func TestTrimNodeKeepsWhatTheControllerReads(t *testing.T) {
	node := busyNode("node-a", 50)
	trimmed := TrimNode(node.DeepCopy())
	want := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a", UID: node.UID, ResourceVersion: node.ResourceVersion, Labels: node.Labels},
		Spec:       corev1.NodeSpec{Taints: node.Spec.Taints},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			NodeInfo:   corev1.NodeSystemInfo{ContainerRuntimeVersion: "containerd://2.0.0"},
			Images:     trimmed.Status.Images, // compared below
		},
	}
	if diff := cmp.Diff(want, trimmed); diff != "" {
		t.Errorf("trimmed node (-want +got):\n%s", diff)
	}
	if got := nodePresent(trimmed).Len(); got != 100 {
		t.Errorf("the trimmed node holds %d names, want 100 (50 images by tag and digest)", got)
	}
	// The compact form is a fifth of the whole node, or less (8 bytes a name).
	if full, small := node.Size(), trimmed.Size(); small*5 > full {
		t.Errorf("trimmed node is %d bytes (protobuf), the full one %d: want a fifth or less", small, full)
	}
	// Trimming again (a relist of an object already trimmed) changes nothing.
	if diff := cmp.Diff(trimmed, TrimNode(trimmed.DeepCopy())); diff != "" {
		t.Errorf("trimmed twice (-once +twice):\n%s", diff)
	}
	// A node that reports no images keeps none.
	if imgs := TrimNode(newNode("bare")).Status.Images; imgs != nil {
		t.Errorf("bare node trimmed to images %v", imgs)
	}
}

// TestTrimmedNodeCountsTagAndDigestAsPresent: a node that reports an image
// by tag and by digest has both counted present after the trim (the fixture
// trims nodes as the binary's informer does), and nothing else.
func TestTrimmedNodeCountsTagAndDigestAsPresent(t *testing.T) {
	digest := "sha256:" + strings.Repeat("b", 64)
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web",
		withImages("registry.example.com/team-1/service-001:1.2.1", "registry.example.com/team-2/service-002@sha256:"+fmt.Sprintf("%064x", 3),
			"ghcr.io/org/app@"+digest, "ghcr.io/org/app:2", "redis:7"))},
		newNode("node-a", withNodeImages("ghcr.io/org/app@"+digest, "ghcr.io/org/app:1")),
		busyNode("node-b", 50))
	nodeB, err := f.c.nodeLister.Get("node-b")
	if err != nil {
		t.Fatal(err)
	}
	if p := nodePresent(nodeB); p.Len() != 100 || len(nodeB.Status.Images) != 1 {
		t.Fatalf("the fixture's node-b holds %d names, want 100", p.Len())
	}
	writes, _ := f.syncStarted("web")
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
	old := busyNode("node-a", 50)
	same := old.DeepCopy()
	same.ResourceVersion = "2"
	same.Status.Images[0].SizeBytes++
	same.Status.Conditions[0].Message = "changed"
	f.c.nodeChanged(logger, TrimNode(old), TrimNode(same))
	if n := f.c.queue.Len(); n != 0 {
		t.Fatalf("a heartbeat enqueued %d caches", n)
	}
	added := same.DeepCopy()
	added.ResourceVersion = "3"
	added.Status.Images = append(added.Status.Images, corev1.ContainerImage{Names: []string{"docker.io/library/nginx:latest"}})
	f.c.nodeChanged(logger, TrimNode(same), TrimNode(added))
	if n := f.c.queue.Len(); n != 1 {
		t.Fatalf("a node that reports a new image enqueued %d caches, want 1", n)
	}
	if key, _ := f.c.queue.Get(); key.Name != "web" {
		t.Errorf("enqueued %s", key)
	}
}

func TestNodePresentReadsUntrimmedNodes(t *testing.T) {
	n := newNode("node-a", withNodeImages("nginx:1.25"))
	key, _ := images.Normalize("docker.io/library/nginx:1.25")
	if !nodePresent(n).Has(key) || !nodePresent(TrimNode(n)).Has(key) {
		t.Error("nginx:1.25 not found in the node's images")
	}
}
