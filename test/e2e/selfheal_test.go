//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// listImages sets what a kwok node's kubelet would report in
// node.status.images.
func listImages(t *testing.T, node string, imgs ...[]string) {
	t.Helper()
	var list []corev1.ContainerImage
	for _, names := range imgs {
		list = append(list, corev1.ContainerImage{Names: names, SizeBytes: 1 << 20})
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"images": list}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kubeClient.CoreV1().Nodes().PatchStatus(context.Background(), node, patch); err != nil {
		t.Fatal(err)
	}
}

// TestNodeListsThatProveNoAbsence: two nodes whose lists of images hold the
// cache's images under names other than the cache's: one lists
// repo@sha256:D and repo:v1 for a cache of repo:v1@sha256:D (the kubelet
// lists both forms, never the two together), the other an image of five
// names (the kubelet lists five at most) that cuts the cached tag. After
// Succeeded, for five minutes (the self-healing looks a minute after an
// operation ends, on every change of a node), neither node's image counts as
// gone: no ImagesGone event, no Job.
func TestNodeListsThatProveNoAbsence(t *testing.T) {
	ns := newNamespace(t, "no-absence")
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	sel := map[string]string{"e2e": "no-absence"}
	addNodes(t, []string{"list-by-digest", "list-cut"}, sel)
	byDigest := "registry.example/app:v1@" + digest
	cut := "registry.example/tools:v7"
	listImages(t, "list-by-digest", []string{"registry.example/app@" + digest, "registry.example/app:v1"})
	var five []string
	for i := range 5 {
		five = append(five, fmt.Sprintf("registry.example/tools:v%d", i+1)) // v7, the cached tag, is cut
	}
	listImages(t, "list-cut", five)
	startController(t)
	jw := watchJobs(t, ns)
	applyCacheSpec(t, ns, "  cacheSpec:\n"+
		"  - images: ["+byDigest+"]\n    nodeSelector: {kubernetes.io/hostname: list-by-digest}\n"+
		"  - images: ["+cut+"]\n    nodeSelector: {kubernetes.io/hostname: list-cut}\n")
	ic := waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if ic.Status.Pulls.Succeeded != 2 {
		t.Fatalf("pulls %+v; want the two pairs settled", ic.Status.Pulls)
	}
	settled := len(jw.Jobs())
	// The nodes go on reporting (kwok's heartbeats), and each change of a
	// node brings the cache back: the self-healing looks again and again.
	quietUntil := time.Now().Add(5 * time.Minute)
	waitFor(t, 6*time.Minute, "five quiet minutes", func() bool {
		if n := len(jw.Jobs()); n != settled {
			t.Fatalf("%d Jobs after Succeeded, %d before: a node's list was taken as proof that an image left it", n, settled)
		}
		if gone := cacheEvents(t, ns, reasons.ImagesGone); len(gone) > 0 {
			t.Fatalf("ImagesGone: %v", gone)
		}
		return time.Now().After(quietUntil)
	})
	// The lists held all along: the test proved something.
	for node, want := range map[string]string{"list-by-digest": "registry.example/app:v1", "list-cut": five[4]} {
		n, err := kubeClient.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, img := range n.Status.Images {
			names = append(names, img.Names...)
		}
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("node %s lists %v at the end; want %s still there", node, names, want)
		}
	}
	if ic := getIC(t, ns, "app"); ic.Status.Reason != v1alpha2.ImageCacheReasonCreate || ic.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Errorf("the cache is %s %s; want its create Succeeded, with no refresh since", ic.Status.Reason, ic.Status.Status)
	}
}
