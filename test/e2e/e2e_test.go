//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/cli"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// The local cluster has kwok-node-0 ... kwok-node-19 (type=kwok), of which
// kwok-node-0 ... kwok-node-4 are tier=backend (make e2e starts it so).
const baseNodes, backendNodes = 20, 5

func nodeList(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// 1. The kube-fledged-shaped sample over 20 nodes, 5 of them backend.
func TestSampleOverTwentyNodes(t *testing.T) {
	startController(t)
	kubectl(t, "apply", "-f", filepath.Join(projectRoot, "deploy", "sample-imagecache.yaml"))
	t.Cleanup(func() {
		kubectl(t, "delete", "-f", filepath.Join(projectRoot, "deploy", "sample-imagecache.yaml"), "--wait=true")
	})
	// As a pipeline waits for it: kubectl finds the plugin on PATH.
	out, code := kubectlFledged(t, "wait", "imagecache1", "-n", sampleNS, "--for=succeeded", "--timeout=2m")
	if code != 0 || out != "imagecache.kubefledged.io/imagecache1 Succeeded (Create): Pulled 50 of 50 images on 20 nodes\n" {
		t.Errorf("kubectl fledged wait: exit %d\n%s", code, out)
	}
	ic := waitIC(t, sampleNS, "imagecache1", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	out, code = kubectlFledged(t, "nodes", "imagecache1", "-n", sampleNS)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != baseNodes+1 ||
		strings.Count(out, " warm ") != baseNodes {
		t.Errorf("kubectl fledged nodes: exit %d, want a header and %d warm nodes:\n%s", code, baseNodes, out)
	}
	want := v1alpha2.PullCounts{Desired: 2*baseNodes + 2*backendNodes, Succeeded: 2*baseNodes + 2*backendNodes}
	if ic.Status.Pulls != want {
		t.Errorf("pulls %+v, want %+v", ic.Status.Pulls, want)
	}
	if ic.Status.NodesMatched != baseNodes || ic.Status.Reason != v1alpha2.ImageCacheReasonCreate || len(ic.Status.Failures) != 0 {
		t.Errorf("status: nodes %d reason %s failures %v", ic.Status.NodesMatched, ic.Status.Reason, ic.Status.Failures)
	}
	if c := meta.FindStatusCondition(ic.Status.Conditions, v1alpha2.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready condition %+v", c)
	}
	if ic.Status.Message != "Pulled 50 of 50 images on 20 nodes" {
		t.Errorf("message %q", ic.Status.Message)
	}
	out = kubectl(t, "get", "ic", "-n", sampleNS, "-o", "wide")
	t.Logf("kubectl get ic -o wide:\n%s", out)
	if !strings.Contains(out, "Succeeded") || !strings.Contains(out, "50 of 50") {
		t.Errorf("kubectl get ic -o wide:\n%s", out)
	}
}

// 2. An update that adds an image and moves a selector runs only the new work.
func TestUpdateRunsOnlyNewWork(t *testing.T) {
	ns := newNamespace(t, "update")
	startController(t)
	jw := watchJobs(t, ns)
	applyCache(t, ns, `
  - images: [docker.io/library/nginx:1.27]
    nodeSelector: {type: kwok}
  - images: [docker.io/library/redis:7.4]
    nodeSelector: {tier: backend}
`)
	waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if n := jw.Count(); n != baseNodes {
		t.Errorf("create: %d Jobs, want %d (one per node)", n, baseNodes)
	}
	jw.Reset()
	applyCache(t, ns, `
  - images: [docker.io/library/nginx:1.27, docker.io/library/alpine:3.20]
    nodeSelector: {type: kwok}
  - images: [docker.io/library/redis:7.4]
    nodeSelector: {kubernetes.io/hostname: kwok-node-10}
`)
	ic := waitIC(t, ns, "app", 2*time.Minute, "the update to succeed", func(ic *v1alpha2.ImageCache) bool {
		return ic.Generation == 2 && done(v1alpha2.ImageCacheActionStatusSucceeded)(ic)
	})
	if ic.Status.Reason != v1alpha2.ImageCacheReasonUpdate || ic.Status.Pulls.Desired != 2*baseNodes+1 || ic.Status.Pulls.Succeeded != 2*baseNodes+1 {
		t.Errorf("status %s %+v", ic.Status.Reason, ic.Status.Pulls)
	}
	want := map[string]int{"kwok-node-10 docker.io/library/redis:7.4": 1}
	for _, n := range nodeList("kwok-node", baseNodes) {
		want[n+" docker.io/library/alpine:3.20"] = 1
	}
	got := pairs(t, jw)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pulls after the update:\n got %v\nwant %v", sortedKeys(got), sortedKeys(want))
	}
}

func sortedKeys(m map[string]int) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	return out
}

// 3. The refresh annotation pulls again, and is removed when done.
func TestRefreshAnnotation(t *testing.T) {
	ns := newNamespace(t, "refresh")
	startController(t)
	jw := watchJobs(t, ns)
	applyCache(t, ns, `
  - images: [docker.io/library/nginx:1.27]
    nodeSelector: {tier: backend}
`)
	first := waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	jw.Reset()
	ic := annotateAndWait(t, ns, "app", v1alpha2.AnnotationRefresh, v1alpha2.ImageCacheReasonRefresh)
	if !ic.Status.StartTime.After(first.Status.StartTime.Time) || ic.Status.Pulls.Succeeded != backendNodes {
		t.Errorf("refresh status: start %v (create %v), pulls %+v", ic.Status.StartTime, first.Status.StartTime, ic.Status.Pulls)
	}
	if n := jw.Count(); n != backendNodes {
		t.Errorf("refresh ran %d Jobs, want %d", n, backendNodes)
	}
}

// 4. Nodes joining during and after an operation are warmed; a node deleted
// mid-operation does not stop the cache from completing.
func TestNodeChurn(t *testing.T) {
	ns := newNamespace(t, "churn")
	names := nodeList("churn", 12)
	addNodes(t, names[:10], map[string]string{"e2e": "churn"})
	// The last node in line also wants an image whose pull hangs (kwok's
	// hang.invalid stage), so the operation lasts until that node leaves.
	if _, err := kubeClient.CoreV1().Nodes().Patch(t.Context(), "churn-9", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"e2e-slow":"true"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	startController(t, "--max-in-flight-jobs=2")
	jw := watchJobs(t, ns)
	applyCache(t, ns, `
  - images: [docker.io/library/nginx:1.27, docker.io/library/redis:7.4]
    nodeSelector: {e2e: churn}
  - images: [hang.invalid/e2e/slow:v1]
    nodeSelector: {e2e-slow: "true"}
`)
	waitIC(t, ns, "app", time.Minute, "Processing with work done", func(ic *v1alpha2.ImageCache) bool {
		return ic.Status.Status == v1alpha2.ImageCacheActionStatusProcessing && ic.Status.Pulls.Succeeded >= 2
	})
	addNodes(t, names[10:11], map[string]string{"e2e": "churn"}) // joins during
	if err := kubeClient.CoreV1().Nodes().Delete(t.Context(), "churn-9", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err) // the last in line leaves mid-operation
	}
	if during := getIC(t, ns, "app"); during.Status.Status != v1alpha2.ImageCacheActionStatusProcessing {
		t.Logf("note: the operation was %s when the nodes changed", during.Status.Status)
	}
	ic := waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if ic.Status.NodesMatched != 10 || ic.Status.Pulls.Desired != 20 || ic.Status.Pulls.Succeeded != 20 {
		t.Errorf("after churn: nodes %d pulls %+v", ic.Status.NodesMatched, ic.Status.Pulls)
	}
	if p := pairs(t, jw); p["churn-10 docker.io/library/nginx:1.27"] != 1 {
		t.Errorf("the node that joined during the operation was not warmed: %v", sortedKeys(p))
	}
	// A node joining after the operation is warmed at once.
	addNodes(t, names[11:12], map[string]string{"e2e": "churn"})
	ic = waitIC(t, ns, "app", time.Minute, "the new node warmed", func(ic *v1alpha2.ImageCache) bool {
		return ic.Status.NodesMatched == 11 && ic.Status.Pulls.Succeeded == 22 && ic.Status.Status == v1alpha2.ImageCacheActionStatusSucceeded
	})
	if p := pairs(t, jw); p["churn-11 docker.io/library/redis:7.4"] != 1 {
		t.Errorf("the node that joined after the operation was not warmed: %v", sortedKeys(p))
	}
}

// A node deleted and re-created under the same name while the controller
// is down (a reimaged VM) is a new node: the restarted controller warms it
// again, though the ledger says its name had the images.
func TestNodeRecreatedUnderSameName(t *testing.T) {
	ns := newNamespace(t, "recreated")
	names := nodeList("recreated", 2)
	addNodes(t, names, map[string]string{"e2e": "recreated"})
	p := startController(t)
	jw := watchJobs(t, ns)
	applyAndTime(t, ns, `
  - images: [docker.io/library/nginx:1.27]
    nodeSelector: {e2e: recreated}
`, v1alpha2.ImageCacheActionStatusSucceeded)
	assertEachPairOnce(t, jw, 2)
	p.stop(t)

	old, err := kubeClient.CoreV1().Nodes().Get(t.Context(), names[0], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := kubeClient.CoreV1().Nodes().Delete(t.Context(), names[0], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, names[0]+" gone", func() bool {
		_, err := kubeClient.CoreV1().Nodes().Get(t.Context(), names[0], metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	addNodes(t, names[:1], map[string]string{"e2e": "recreated"})
	again, err := kubeClient.CoreV1().Nodes().Get(t.Context(), names[0], metav1.GetOptions{})
	if err != nil || again.UID == old.UID {
		t.Fatalf("the node was not re-created with a new UID: %v", err)
	}

	jw.Reset()
	// kwok and the scheduler may take a while to run pods on a node that
	// was just re-created: a pull deadline long enough for that.
	startController(t, "--image-pull-deadline-duration=90s")
	start := time.Now()
	waitFor(t, time.Minute, "a Job for the re-created node", func() bool { return jw.Count() > 0 })
	ic := waitIC(t, ns, "app", 2*time.Minute, "the new node warmed", func(ic *v1alpha2.ImageCache) bool {
		return ic.Status.Status != v1alpha2.ImageCacheActionStatusProcessing &&
			ledgerOf(t, ic).Tag(names[0]) == ledger.UIDTag(again)
	})
	if ic.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded || ic.Status.Pulls.Succeeded != 2 {
		t.Fatalf("%s: %s; failures %+v", ic.Status.Status, ic.Status.Message, ic.Status.Failures)
	}
	t.Logf("re-created node warmed in %v: %s", time.Since(start).Round(100*time.Millisecond), ic.Status.Message)
	if p := pairs(t, jw); len(p) != 1 || p[names[0]+" docker.io/library/nginx:1.27"] != 1 {
		t.Errorf("pulls after the restart: %v, want only the re-created node's", sortedKeys(p))
	}
}

// 5. A failing image gives Failed, with the failure per node.
func TestFailingImage(t *testing.T) {
	ns := newNamespace(t, "failing")
	startController(t)
	applyCache(t, ns, `
  - images: [fail.invalid/app:v1, docker.io/library/nginx:1.27]
    nodeSelector: {tier: backend}
`)
	ic := waitIC(t, ns, "app", 2*time.Minute, "Failed", done(v1alpha2.ImageCacheActionStatusFailed))
	got := ic.Status.Failures["fail.invalid/app:v1"]
	if len(got) != backendNodes {
		t.Fatalf("failures %+v", ic.Status.Failures)
	}
	for i, f := range got {
		if f.Node != fmt.Sprintf("kwok-node-%d", i) || f.Reason != puller.ReasonImageNotFound || !strings.Contains(f.Message, "not found") {
			t.Errorf("failure %d: %+v", i, f)
		}
	}
	if ic.Status.Pulls.Succeeded != backendNodes || ic.Status.Pulls.Failed != backendNodes {
		t.Errorf("pulls %+v", ic.Status.Pulls)
	}
	if ic.Status.Message != "Pulled 5 of 10 images on 5 nodes; 5 failed" {
		t.Errorf("message %q", ic.Status.Message)
	}
}

// 6. The controller killed mid-operation and started again: the cache
// completes, and no pull was asked for twice.
func TestControllerKilledMidOperation(t *testing.T) {
	ns := newNamespace(t, "kill")
	args := []string{"--max-in-flight-jobs=3", "--images-per-job=1"}
	first := startController(t, args...)
	jw := watchJobs(t, ns)
	applyCache(t, ns, `
  - images: [docker.io/library/nginx:1.27, docker.io/library/redis:7.4, docker.io/library/alpine:3.20]
    nodeSelector: {type: kwok}
`)
	waitIC(t, ns, "app", 2*time.Minute, "a third of the work done", func(ic *v1alpha2.ImageCache) bool {
		return ic.Status.Pulls.Succeeded >= baseNodes
	})
	first.kill(t)
	before := getIC(t, ns, "app")
	t.Logf("killed the controller at %d of %d pulls, %d Jobs created", before.Status.Pulls.Succeeded, before.Status.Pulls.Desired, jw.Count())
	startController(t, args...)
	ic := waitIC(t, ns, "app", 3*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if ic.Status.Pulls.Succeeded != 3*baseNodes || !ic.Status.StartTime.Equal(before.Status.StartTime) {
		t.Errorf("pulls %+v, start %v (before %v)", ic.Status.Pulls, ic.Status.StartTime, before.Status.StartTime)
	}
	assertEachPairOnce(t, jw, 3*baseNodes)
}

// 7. 200 nodes x 5 images completes (a smoke test of scale; no timing asserted).
func TestTwoHundredNodesFiveImages(t *testing.T) {
	ns := newNamespace(t, "scale")
	addNodes(t, nodeList("scale", 200-baseNodes), nil)
	startController(t)
	start := time.Now()
	applyCache(t, ns, `
  - images: [docker.io/library/nginx:1.27, docker.io/library/redis:7.4, docker.io/library/alpine:3.20,
             registry.k8s.io/pause:3.10, ghcr.io/org/app:v1]
    nodeSelector: {type: kwok}
`)
	ic := waitIC(t, ns, "app", 8*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if ic.Status.NodesMatched != 200 || ic.Status.Pulls.Desired != 1000 || ic.Status.Pulls.Succeeded != 1000 {
		t.Errorf("nodes %d pulls %+v", ic.Status.NodesMatched, ic.Status.Pulls)
	}
	t.Logf("200 nodes x 5 images: Succeeded after %v", time.Since(start).Round(100*time.Millisecond))
}

// The purge annotation: one delete Job per node removes the cache's images,
// the annotation goes, and the status says what was removed.
func TestPurgeAnnotation(t *testing.T) {
	ns := newNamespace(t, "purge")
	startController(t, "--cri-socket-path=/run/containerd/containerd.sock")
	jw := watchJobs(t, sampleNS)
	applyCache(t, ns, `
  - images: [docker.io/library/nginx:1.27, docker.io/library/redis:7.4]
    nodeSelector: {tier: backend}
`)
	waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	jw.Reset()
	ic := annotateAndWait(t, ns, "app", v1alpha2.AnnotationPurge, v1alpha2.ImageCacheReasonPurge)
	// kwok's pods have no kubelet to say it pulled the images, so nothing
	// shows they were absent before: the purge keeps them all, and says so.
	// (The real-node tests remove what a kubelet pulled.)
	if want := "Removed 0 of 10 images on 5 nodes; 10 kept (10 not pulled there by this cache)"; ic.Status.Message != want {
		t.Errorf("message %q, want %q", ic.Status.Message, want)
	}
	for img, list := range ic.Status.Kept {
		if len(list) != backendNodes || list[0].Reason != "NotPulledByThisCache" {
			t.Errorf("kept %s: %+v", img, list)
		}
	}
	if len(ic.Status.Kept) != 2 {
		t.Errorf("status.kept %v, want both images", ic.Status.Kept)
	}
	if n := jw.Count(); n != 0 {
		t.Errorf("%d delete Jobs, want none", n)
	}
	if c := meta.FindStatusCondition(ic.Status.Conditions, v1alpha2.ConditionReady); c == nil || c.Reason != "Purged" {
		t.Errorf("Ready %+v", c)
	}
	// Its status says Succeeded (the purge did), and its images are off
	// the nodes: a pipeline's wait must not read it as warm.
	out, code := kubectlFledged(t, "wait", "app", "-n", ns, "--for=succeeded", "--timeout=30s")
	if code != cli.ExitStalled || !strings.Contains(out, "Stalled: Purged: ") {
		t.Errorf("kubectl fledged wait on the purged cache: exit %d, %q; want %d, Stalled: Purged", code, out, cli.ExitStalled)
	}
	// kubectl get ic: NAME READY STATUS DONE DESIRED FAILED AGE.
	if row := strings.Fields(kubectl(t, "get", "ic", "app", "-n", ns, "--no-headers")); len(row) < 3 || row[1] != "False" || row[2] != "Succeeded" {
		t.Errorf("kubectl get ic of the purged cache: %v; want READY False, STATUS Succeeded", row)
	}
}

// A namespace that enforces Pod Security "restricted": the pull pods pass the
// API server's PodSecurity admission, so the cache succeeds on kwok nodes.
func TestRestrictedNamespace(t *testing.T) {
	ns := newNamespace(t, "restricted", restricted)
	startController(t)
	ic := applyAndTime(t, ns, `
  - images: [docker.io/library/nginx:1.27, docker.io/library/redis:7.4]
    nodeSelector: {tier: backend}
`, v1alpha2.ImageCacheActionStatusSucceeded)
	if want := "Pulled 10 of 10 images on 5 nodes"; ic.Status.Message != want {
		t.Errorf("message %q, want %q", ic.Status.Message, want)
	}
}
