//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// TestNodesThePullsCannotRunOn: an all-nodes cache over a Windows node, an
// s390x node (the helper image has neither), a cordoned node, a node whose
// network is not ready and a node that can take a pull. It Succeeds, the
// four others skipped with their reasons; once uncordoned, and once its
// network is ready, the two are warmed without a refresh; the first two
// never get a Job.
func TestNodesThePullsCannotRunOn(t *testing.T) {
	ns := newNamespace(t, "platforms")
	sel := map[string]string{"e2e": "platforms"}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for sk, sv := range sel {
			m[sk] = sv
		}
		return m
	}
	addNodes(t, []string{"platform-linux"}, with(corev1.LabelArchStable, "amd64"))
	addNodes(t, []string{"platform-windows"}, with(corev1.LabelOSStable, "windows"))
	addNodes(t, []string{"platform-s390x"}, with(corev1.LabelArchStable, "s390x"))
	addNodes(t, []string{"platform-cordoned"}, sel)
	// Cilium's taint: the kube-controller-manager keeps
	// node.kubernetes.io/network-unavailable in step with the node's
	// NetworkUnavailable condition, which kwok's nodes report False, so it
	// would go at once (the unit tests cover it).
	addNodes(t, []string{"platform-net-down"}, sel,
		corev1.Taint{Key: "node.cilium.io/agent-not-ready", Effect: corev1.TaintEffectNoSchedule})
	kubectl(t, "cordon", "platform-cordoned")
	startController(t)
	jw := watchJobs(t, ns)
	start := time.Now()
	applyCache(t, ns, "  - images: [docker.io/library/nginx:1.27]\n    nodeSelector: {e2e: platforms}\n")
	ic := waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	want := "Pulled 1 of 5 images on 5 nodes; 4 skipped on 4 nodes (1 cordoned, 1 not Linux, " +
		"1 of an architecture the helper image lacks, 1 whose network is not ready)"
	if ic.Status.Message != want || ic.Status.Pulls.Skipped != 4 || ic.Status.Pulls.Failed != 0 {
		t.Fatalf("status %q, pulls %+v; want %q", ic.Status.Message, ic.Status.Pulls, want)
	}
	t.Logf("Succeeded in %v: %s", time.Since(start).Round(100*time.Millisecond), ic.Status.Message)

	kubectl(t, "uncordon", "platform-cordoned")
	kubectl(t, "taint", "node", "platform-net-down", "node.cilium.io/agent-not-ready:NoSchedule-")
	want = "Pulled 3 of 5 images on 5 nodes; 2 skipped on 2 nodes (1 not Linux, 1 of an architecture the helper image lacks)"
	ic = waitIC(t, ns, "app", 2*time.Minute, "the two nodes warmed", func(ic *v1alpha2.ImageCache) bool {
		return ic.Status.Message == want && done(v1alpha2.ImageCacheActionStatusSucceeded)(ic)
	})
	if ic.Status.Reason == v1alpha2.ImageCacheReasonRefresh {
		t.Error("the nodes were warmed by a refresh")
	}
	asked := pairs(t, jw)
	for pair := range asked {
		if strings.HasPrefix(pair, "platform-windows ") || strings.HasPrefix(pair, "platform-s390x ") {
			t.Errorf("a pull Job asked for %s", pair)
		}
	}
	if len(asked) != 3 {
		t.Errorf("%d pairs asked of the nodes, want 3: %v", len(asked), asked)
	}
}
