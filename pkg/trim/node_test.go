package trim

import (
	"strings"
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

// TestNamesCut: a node that lists an image with as many names as the
// kubelet lists (five) may leave out the one looked for; trimmed or not, it
// says so.
func TestNamesCut(t *testing.T) {
	five := corev1.ContainerImage{Names: []string{"r/a@sha256:" + strings.Repeat("a", 64), "r/a:1", "r/a:2", "r/a:3", "r/a:4"}}
	four := corev1.ContainerImage{Names: []string{"r/b@sha256:" + strings.Repeat("b", 64), "r/b:1", "r/b:2", "r/b:3"}}
	for _, tc := range []struct {
		name string
		list []corev1.ContainerImage
		want bool
	}{
		{"four names at most", []corev1.ContainerImage{four}, false},
		{"an image with five names", []corev1.ContainerImage{four, five}, true},
		{"no images", nil, false},
	} {
		n := &corev1.Node{Status: corev1.NodeStatus{Images: tc.list}}
		trimmed := Node(n)
		if got := NamesCut(n); got != tc.want {
			t.Errorf("%s: untrimmed NamesCut = %v, want %v", tc.name, got, tc.want)
		}
		if got := NamesCut(trimmed); got != tc.want {
			t.Errorf("%s: trimmed NamesCut = %v, want %v", tc.name, got, tc.want)
		}
		if got, want := ListedImages(trimmed), len(tc.list); got != want {
			t.Errorf("%s: %d images listed, want %d", tc.name, got, want)
		}
		if len(tc.list) > 0 && !NodeImages(trimmed).Has("docker.io/r/b:1") {
			t.Errorf("%s: the trimmed node lost its images", tc.name)
		}
	}
}
