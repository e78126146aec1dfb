package pullevents

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"kubefledged.io/kube-fledged/pkg/trim"
)

// TestProvesAbsence: a kubelet of 1.33 or later may pull an image it has
// again (KubeletEnsureSecretPulledImages), so its Pulling event proves the
// image absent only where the node lists every image it has, under every
// name: fewer images than the kubelet lists, and none with the five names
// it lists at most.
func TestProvesAbsence(t *testing.T) {
	node := func(kubelet string, images ...corev1.ContainerImage) *corev1.Node {
		n := &corev1.Node{Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: kubelet}, Images: images}}
		return trim.Node(n)
	}
	names := func(n int) corev1.ContainerImage {
		ci := corev1.ContainerImage{}
		for i := range n {
			ci.Names = append(ci.Names, fmt.Sprintf("registry.example/app:%d", i))
		}
		return ci
	}
	var full []corev1.ContainerImage
	for i := range 50 {
		full = append(full, corev1.ContainerImage{Names: []string{fmt.Sprintf("registry.example/other-%d:v1", i)}})
	}
	for _, tc := range []struct {
		name string
		node *corev1.Node
		want bool
	}{
		{"an older kubelet", node("v1.32.4", full...), true},
		{"a short list", node("v1.37.2", names(2)), true},
		{"a list at the kubelet's limit", node("v1.37.2", full...), false},
		{"an image with five names", node("v1.37.2", names(5)), false},
		{"an image with four names", node("v1.37.2", names(4)), true},
	} {
		if got := ProvesAbsence(tc.node, 50); got != tc.want {
			t.Errorf("%s: ProvesAbsence = %v, want %v", tc.name, got, tc.want)
		}
	}
}
