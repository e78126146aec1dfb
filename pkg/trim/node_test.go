package trim

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/images"
)

func TestTrimNodeKeepsWhatTheControllerReads(t *testing.T) {
	node := fledgedtest.BusyNode("node-a", 50)
	node.Spec.Unschedulable = true
	trimmed := Node(node.DeepCopy())
	want := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a", UID: node.UID, ResourceVersion: node.ResourceVersion, Labels: node.Labels},
		Spec:       corev1.NodeSpec{Taints: node.Spec.Taints, Unschedulable: true},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			NodeInfo:   corev1.NodeSystemInfo{ContainerRuntimeVersion: "containerd://2.0.0", KubeletVersion: "v1.37.2"},
			Images:     trimmed.Status.Images, // compared below
		},
	}
	if diff := cmp.Diff(want, trimmed); diff != "" {
		t.Errorf("trimmed node (-want +got):\n%s", diff)
	}
	if got := NodeImages(trimmed).Len(); got != 100 {
		t.Errorf("the trimmed node holds %d names, want 100 (50 images by tag and digest)", got)
	}
	if got, want := ListedImages(trimmed), 50; got != want || ListedImages(node) != want {
		t.Errorf("the trimmed node lists %d images, the whole one %d; want %d", got, ListedImages(node), want)
	}
	// The compact form is a fifth of the whole node, or less (8 bytes a name).
	if full, small := node.Size(), trimmed.Size(); small*5 > full {
		t.Errorf("trimmed node is %d bytes (protobuf), the full one %d: want a fifth or less", small, full)
	}
	// Trimming again (a relist of an object already trimmed) changes nothing.
	if diff := cmp.Diff(trimmed, Node(trimmed.DeepCopy())); diff != "" {
		t.Errorf("trimmed twice (-once +twice):\n%s", diff)
	}
	// A node that reports no images keeps none.
	if imgs := Node(fledgedtest.NewNode("bare")).Status.Images; imgs != nil {
		t.Errorf("bare node trimmed to images %v", imgs)
	}
}

func TestNodePresentReadsUntrimmedNodes(t *testing.T) {
	n := fledgedtest.NewNode("node-a", fledgedtest.WithNodeImages("nginx:1.25"))
	key, _ := images.Normalize("docker.io/library/nginx:1.25")
	if !NodeImages(n).Has(key) || !NodeImages(Node(n)).Has(key) {
		t.Error("nginx:1.25 not found in the node's images")
	}
}
