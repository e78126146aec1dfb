package integration

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/test/framework"
)

// slicesOf lists a cache's ledger slices.
func slicesOf(t *testing.T, ic *v1alpha2.ImageCache) []*v1alpha2.ImageCacheSlice {
	t.Helper()
	list, err := fledgedtest.Slices(context.Background(), fledged, ic)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// ledgerOf reads a cache's ledger from its status and slices.
func ledgerOf(t *testing.T, ic *v1alpha2.ImageCache) *ledger.Ledger {
	t.Helper()
	return fledgedtest.MustLoadLedger(t, fledged, ic)
}

// drivePulled is driveToCompletion where the kubelet pulled every image.
func drivePulled(t *testing.T, ns, name string, timeout time.Duration) *v1alpha2.ImageCache {
	t.Helper()
	var ic *v1alpha2.ImageCache
	waitFor(t, timeout, ns+"/"+name+" to complete", func() (bool, error) {
		for _, j := range listJobs(t, ns) {
			if isActive(&j) && j.DeletionTimestamp == nil {
				completeJobPulled(t, j)
			}
		}
		ic = cacheStatus(t, ns, name)
		return ic.Status.ObservedGeneration == ic.Generation && ic.Status.Status != "" &&
			ic.Status.Status != v1alpha2.ImageCacheActionStatusProcessing, nil
	})
	return ic
}

// TestLedgerInSlices: on the API server, a cache's ledger lives in a slice of
// its own, owned by the cache; a ledger the previous release wrote (all in
// status.ledger) moves into slices with nothing pulled again and its
// ownership kept; a slice damaged or deleted by hand makes the cache pull
// again where it no longer proves the pulls; a node that leaves goes from
// the slice, one that joins comes in.
func TestLedgerInSlices(t *testing.T) {
	ctx := context.Background()
	ns := testNamespace(t, "slices")
	nodes := nodeNames(ns, 3)
	for _, n := range nodes {
		createNode(t, n, "pool", ns)
		// The node lists its images (none of the cache's) and its kubelet
		// pulls only what it lacks: what the cache pulls there is its own.
		setNode(t, n, func(node *corev1.Node) {
			node.Status.NodeInfo.KubeletVersion = "v1.32.9"
			node.Status.Images = []corev1.ContainerImage{{Names: []string{"registry.example/other:v1"}, SizeBytes: 1 << 20}}
		}, true)
	}
	stop := runController(t, nil)
	createCache(t, ns, "web", entry(map[string]v1alpha2.LabelValue{"pool": v1alpha2.LabelValue(ns)},
		"registry.example/a:v1", "registry.example/b:v1"))
	ic := drivePulled(t, ns, "web", time.Minute)
	if ic.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Fatalf("%s %q", ic.Status.Status, ic.Status.Message)
	}
	if h := ic.Status.Ledger; h == nil || h.Format != ledger.FormatVersion || len(h.Nodes) != 0 {
		t.Errorf("status.ledger %+v, want only the header", h)
	}
	sls := slicesOf(t, ic)
	if len(sls) != 1 || sls[0].NodeCount != 3 {
		t.Fatalf("%d slices, want one of 3 nodes", len(sls))
	}
	if ref := metav1.GetControllerOf(sls[0]); ref == nil || ref.UID != ic.UID {
		t.Errorf("the slice's owner %+v, want the cache", ref)
	}
	out, err := cp.Kubectl(ctx, "get", "imagecacheslices", "-n", ns)
	if err != nil || !strings.Contains(out, "CACHE") || !strings.Contains(out, "NODES") || !strings.Contains(out, sls[0].Name) {
		t.Errorf("kubectl get imagecacheslices: %v\n%s", err, out)
	}
	before := ledgerOf(t, ic)
	if !before.Owned(nodes[0], "registry.example/a:v1") {
		t.Fatalf("the cache does not own what it pulled: %v", before.OwnedNodes())
	}

	// The previous release wrote the whole ledger in the status.
	stop()
	ic = cacheStatus(t, ns, "web")
	ic.Status.Ledger = before.Encode()
	if _, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).UpdateStatus(ctx, ic, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, sl := range slicesOf(t, ic) {
		if err := fledged.KubefledgedV1alpha2().ImageCacheSlices(ns).Delete(ctx, sl.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	jw := watchJobs(t, ns)
	runController(t, nil)
	waitFor(t, 30*time.Second, "the ledger moved into a slice", func() (bool, error) {
		ic = cacheStatus(t, ns, "web")
		return ic.Status.Ledger.Format == ledger.FormatVersion && len(slicesOf(t, ic)) == 1, nil
	})
	if diff := cmp.Diff(before.Encode(), ledgerOf(t, ic).Encode()); diff != "" {
		t.Errorf("the ledger moved into slices differs (-before +after):\n%s", diff)
	}
	if jw.count() != 0 {
		t.Errorf("moving the ledger made %d Jobs", jw.count())
	}

	// A slice's entry of one node damaged by hand: that node's pulls are
	// done again, and it owns nothing there it cannot prove.
	sl := slicesOf(t, ic)[0]
	sl.Ledger.Nodes[nodes[1]] = "!!damaged!!"
	if _, err := fledged.KubefledgedV1alpha2().ImageCacheSlices(ns).Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a Job for the node of the damaged entry", func() (bool, error) { return jw.count() > 0, nil })
	ic = driveToCompletion(t, ns, "web", time.Minute)
	if p := jw.pairs(t); len(p) != 2 || p[nodes[1]+" registry.example/a:v1"] != 1 {
		t.Errorf("pulled again: %v, want node %s's two images once", p, nodes[1])
	}
	if led := ledgerOf(t, ic); led.Owned(nodes[1], "registry.example/a:v1") || !led.Owned(nodes[0], "registry.example/a:v1") {
		t.Errorf("owned after the damage: on %v, want all but %s", led.OwnedNodes(), nodes[1])
	}

	// The slice deleted by hand: every node pulls again.
	jw2 := watchJobs(t, ns)
	if err := fledged.KubefledgedV1alpha2().ImageCacheSlices(ns).Delete(ctx, slicesOf(t, ic)[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "Jobs for the nodes of the deleted slice", func() (bool, error) { return jw2.count() >= 3, nil })
	ic = driveToCompletion(t, ns, "web", time.Minute)
	if p := jw2.pairs(t); len(p) != 6 {
		t.Errorf("pulled again: %v, want the 6 pairs once", p)
	}
	if ic.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded || len(slicesOf(t, ic)) != 1 {
		t.Errorf("%s %q, %d slices", ic.Status.Status, ic.Status.Message, len(slicesOf(t, ic)))
	}

	// A node leaves, one joins.
	if err := kubeClient.CoreV1().Nodes().Delete(ctx, nodes[2], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	joined := ns + "-new"
	createNode(t, joined, "pool", ns)
	waitFor(t, 30*time.Second, "a Job for the node that joined", func() (bool, error) { return jw2.count() > 3, nil })
	ic = driveToCompletion(t, ns, "web", time.Minute)
	got := ledgerOf(t, ic).Nodes()
	if want := []string{nodes[0], nodes[1], joined}; !slices.Equal(got, want) {
		t.Errorf("the ledger's nodes %v, want %v", got, want)
	}
	if n := slicesOf(t, ic)[0].NodeCount; n != 3 {
		t.Errorf("the slice counts %d nodes, want 3", n)
	}
}

// TestOlderControllerOnASlicedCache: the release before the slices, built
// from its commit and run as a process, meets a cache whose ledger is in
// slices: it refuses status.ledger's format 2, reads the cache as having
// recorded nothing and pulls each pair once again, owning nothing (the images
// were there); this release, back, reads the older one's status.ledger with
// the slices and pulls nothing again.
func TestOlderControllerOnASlicedCache(t *testing.T) {
	older := filepath.Join(t.TempDir(), "kube-fledged-older")
	if err := framework.BuildAt(projectRoot, framework.PreviousRelease, "fledged", older); err != nil {
		t.Fatal(err)
	}
	ns := testNamespace(t, "downgrade")
	nodes := nodeNames(ns, 2)
	for _, n := range nodes {
		createNode(t, n, "pool", ns)
	}
	stop := runController(t, nil)
	createCache(t, ns, "web", entry(map[string]v1alpha2.LabelValue{"pool": v1alpha2.LabelValue(ns)},
		"registry.example/a:v1", "registry.example/b:v1"))
	ic := driveToCompletion(t, ns, "web", time.Minute)
	if ic.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded || ic.Status.Ledger.Format != ledger.FormatVersion {
		t.Fatalf("%s %q, ledger %+v", ic.Status.Status, ic.Status.Message, ic.Status.Ledger)
	}
	stop()

	jw := watchJobs(t, ns)
	proc, err := framework.StartProc("older controller", filepath.Join(t.TempDir(), "older.log"), older,
		"--kubeconfig="+cp.Kubeconfig, "--helper-image=registry.local/kube-fledged:test", "--image-pull-deadline-duration=3s",
		"--image-cache-refresh-frequency=0s", "--metrics-bind-address=0", "--health-probe-bind-address=0")
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Stop(10 * time.Second)
	waitFor(t, time.Minute, "the older controller to pull again", func() (bool, error) {
		if proc.Exited() {
			t.Fatalf("the older controller exited:\n%s", proc.LogTail(20))
		}
		completeActiveJobs(t, ns)
		ic = cacheStatus(t, ns, "web")
		return ic.Status.Ledger != nil && ic.Status.Ledger.Format < ledger.FormatVersion &&
			ic.Status.Status == v1alpha2.ImageCacheActionStatusSucceeded && len(ic.Status.Ledger.Nodes) == len(nodes), nil
	})
	if p := jw.pairs(t); len(p) != 4 {
		t.Errorf("the older controller pulled %v, want each of the 4 pairs once", p)
	}
	if owned := ledger.Decode(ic.Status.Ledger).OwnedNodes(); len(owned) != 0 {
		t.Errorf("the older controller owns images on %v, which were there before its pulls", owned)
	}
	if n := len(slicesOf(t, ic)); n != 1 {
		t.Errorf("%d slices after the older controller, want the one it left alone", n)
	}
	proc.Stop(10 * time.Second)

	jw2 := watchJobs(t, ns)
	runController(t, nil)
	waitFor(t, 30*time.Second, "this release to move the ledger back into slices", func() (bool, error) {
		ic = cacheStatus(t, ns, "web")
		return ic.Status.Ledger.Format == ledger.FormatVersion, nil
	})
	if led := ledgerOf(t, ic); led.Get(nodes[0], "registry.example/a:v1") != ledger.Pulled {
		t.Errorf("after the upgrade again: %v on %s, want pulled", led.Get(nodes[0], "registry.example/a:v1"), nodes[0])
	}
	stable(t, ns, "web", 10*time.Second, func(ic *v1alpha2.ImageCache) bool {
		return ic.Status.Status == v1alpha2.ImageCacheActionStatusSucceeded
	})
	if jw2.count() != 0 {
		t.Errorf("this release, back, made %d Jobs", jw2.count())
	}
}
