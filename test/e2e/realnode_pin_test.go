//go:build e2e

package e2e

// Pinned caches on the real node: the kubelet's image garbage collection
// spares what a cache pinned, and takes what it did not; a purge unpins
// before it removes, and never touches containerd's own pin of the sandbox
// image; a deleted cache unpins on its way out; a pin past the disk budget is
// refused with the sizes. Pin Jobs run in the controller's namespace.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// pinned says whether the node's containerd reports the image pinned.
func (rn *realNode) pinned(t *testing.T, image string) bool {
	t.Helper()
	st := rn.imageStatus(t, image)
	return st != nil && st.GetPinned()
}

// applyNamedCache applies an ImageCache of the given spec (YAML, indented
// by two), and deletes it when the test ends.
func applyNamedCache(t *testing.T, ns, name, spec string) {
	t.Helper()
	manifest := "apiVersion: kubefledged.io/v1alpha2\nkind: ImageCache\nmetadata: {name: " + name + "}\nspec:\n" + spec
	kubectlIn(t, manifest, "apply", "-n", ns, "-f", "-")
	t.Cleanup(func() {
		_ = fledged.KubefledgedV1alpha2().ImageCaches(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
		waitFor(t, 2*time.Minute, "cache "+name+" to go", func() bool {
			_, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Get(context.Background(), name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
	})
}

func pinnedAll(n int32) func(*v1alpha2.ImageCache) bool {
	return func(ic *v1alpha2.ImageCache) bool {
		return done(v1alpha2.ImageCacheActionStatusSucceeded)(ic) && ic.Status.Pulls.Pinned == n
	}
}

// TestRealNodePinnedImageSurvivesImageGC: two caches of one image each, one
// pinning, both Succeeded; the kubelet's image garbage collection (made to
// collect every unused image: thresholds of 1% and 0%, no minimum age, and
// the image filesystem's eviction threshold past its use) removes the
// unpinned image and spares the pinned one, and the unpinned one is pulled
// again at once, its absence from the node's list of images certain (the
// node lists them all). Then the pinned cache is
// purged: its image unpinned, then removed, and the sandbox image, pinned by
// containerd itself, still pinned and there.
func TestRealNodePinnedImageSurvivesImageGC(t *testing.T) {
	rn := needRealNode(t)
	if rn.containerdRoot == "" || rn.pauseImage == "" {
		t.Fatal("the real node's env file names no containerd root or sandbox image: bring it up again with hack/real-node-up.sh")
	}
	ns := newNamespace(t, "real-pin")
	stamp := time.Now().Unix()
	keep := rn.image(t, "shell", fmt.Sprintf("e2e/pinned:v%d", stamp), false)
	lose := rn.image(t, "noshell", fmt.Sprintf("e2e/unpinned:v%d", stamp), false)
	controllerJobs, cacheJobs := watchJobs(t, sampleNS), watchJobs(t, ns)
	proc := rn.controller(t, "--containerd-root="+rn.containerdRoot)
	applyNamedCache(t, ns, "pinned", "  pin: true\n  cacheSpec:\n"+imageList(keep)+onRealNode(rn))
	applyNamedCache(t, ns, "plain", "  cacheSpec:\n"+imageList(lose)+onRealNode(rn))
	ic := waitIC(t, ns, "pinned", 2*time.Minute, "Succeeded with its image pinned", pinnedAll(1))
	waitIC(t, ns, "plain", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if !strings.Contains(ic.Status.Message, "1 pinned") {
		t.Errorf("status message %q does not say it pinned", ic.Status.Message)
	}
	if !rn.pinned(t, keep) || rn.pinned(t, lose) {
		t.Fatalf("CRI: %s pinned %v, %s pinned %v; want only the first", keep, rn.pinned(t, keep), lose, rn.pinned(t, lose))
	}
	for _, j := range cacheJobs.Jobs() {
		if puller.IsPinJob(&j) {
			t.Errorf("pin Job %s runs in the cache's namespace", j.Name)
		}
	}
	pins := 0
	for _, j := range controllerJobs.Jobs() {
		if puller.IsPinJob(&j) {
			pins++
		}
	}
	if pins == 0 {
		t.Errorf("no pin Job in the controller's namespace %s", sampleNS)
	}

	// The kubelet's image garbage collection, made to collect every
	// unused image it may.
	t.Cleanup(func() { rn.restartKubelet(t) })
	rn.restartKubelet(t, "imageGCHighThresholdPercent: 1", "imageGCLowThresholdPercent: 0", "imageMinimumGCAge: 0s",
		"evictionPressureTransitionPeriod: 0s",
		`evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 99%, nodefs.inodesFree: 1%}`)
	waitFor(t, 7*time.Minute, "the kubelet's image garbage collection to remove the unpinned "+lose, func() bool {
		return !rn.present(t, lose)
	})
	if !rn.present(t, keep) || !rn.pinned(t, keep) {
		t.Fatalf("the image garbage collection took the pinned %s (present %v, pinned %v)", keep, rn.present(t, keep), rn.pinned(t, keep))
	}
	rn.restartKubelet(t)

	// The unpinned image is pulled again at once: the node lists every
	// image, so its absence is certain.
	waitFor(t, 3*time.Minute, "the plain cache to pull "+lose+" again", func() bool { return rn.present(t, lose) })
	healed := waitIC(t, ns, "plain", 2*time.Minute, "its refresh to succeed", func(ic *v1alpha2.ImageCache) bool {
		return ic.Status.Reason == v1alpha2.ImageCacheReasonRefresh && done(v1alpha2.ImageCacheActionStatusSucceeded)(ic)
	})
	if healed.Status.Pulls.Succeeded != 1 {
		t.Errorf("the plain cache after its refresh: %+v", healed.Status.Pulls)
	}
	if n := proc.metric(t, "kubefledged_image_evictions_total"); n < 1 {
		t.Errorf("kubefledged_image_evictions_total %v, want at least 1", n)
	}

	// The purge unpins, then removes; containerd's own pin stays.
	if !rn.pinned(t, rn.pauseImage) {
		t.Fatalf("the sandbox image %s is not pinned by containerd", rn.pauseImage)
	}
	annotateAndWait(t, ns, "pinned", v1alpha2.AnnotationPurge, v1alpha2.ImageCacheReasonPurge)
	if rn.present(t, keep) {
		t.Errorf("the purge left %s on the node (pinned %v)", keep, rn.pinned(t, keep))
	}
	if !rn.present(t, rn.pauseImage) || !rn.pinned(t, rn.pauseImage) {
		t.Errorf("the sandbox image %s after the purge: present %v, pinned %v", rn.pauseImage, rn.present(t, rn.pauseImage), rn.pinned(t, rn.pauseImage))
	}
	if pins := ledgerOf(t, getIC(t, ns, "pinned")).PinNodes(); len(pins) > 0 {
		t.Errorf("the purged cache still records pins on %v", pins)
	}
}

// TestRealNodeDeletedCacheUnpins: a pinning cache carries the finalizer;
// deleted, it unpins its image on the node, then goes; the image stays,
// unpinned. One whose node is gone (its Node deleted) goes at once.
func TestRealNodeDeletedCacheUnpins(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-pin-delete")
	img := rn.image(t, "shell", fmt.Sprintf("e2e/pinned-deleted:v%d", time.Now().Unix()), false)
	rn.controller(t, "--containerd-root="+rn.containerdRoot)
	applyNamedCache(t, ns, "held", "  pin: true\n  cacheSpec:\n"+imageList(img)+onRealNode(rn))
	ic := waitIC(t, ns, "held", 2*time.Minute, "Succeeded with its image pinned", pinnedAll(1))
	if !strings.Contains(strings.Join(ic.Finalizers, ","), "kubefledged.io/unpin") || !rn.pinned(t, img) {
		t.Fatalf("finalizers %v, CRI pinned %v", ic.Finalizers, rn.pinned(t, img))
	}
	if err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Delete(context.Background(), "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "the deleted cache to go", func() bool {
		_, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Get(context.Background(), "held", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if !rn.present(t, img) || rn.pinned(t, img) {
		t.Errorf("after the cache went: %s present %v, pinned %v; want it there, unpinned", img, rn.present(t, img), rn.pinned(t, img))
	}

	// A node that is gone holds none of it: the cache goes within a
	// minute, far inside the unpin timeout (10 minutes), though its pin
	// there could not be taken away.
	other := rn.image(t, "noshell", fmt.Sprintf("e2e/pinned-node-gone:v%d", time.Now().Unix()), false)
	applyNamedCache(t, ns, "gone", "  pin: true\n  cacheSpec:\n"+imageList(other)+onRealNode(rn))
	waitIC(t, ns, "gone", 2*time.Minute, "Succeeded with its image pinned", pinnedAll(1))
	rn.leave(t)
	t.Cleanup(func() { rn.join(t) })
	began := time.Now()
	if err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Delete(context.Background(), "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the deleted cache to go, its node gone", func() bool {
		_, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Get(context.Background(), "gone", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	t.Logf("the cache whose node is gone went %.1fs after its deletion", time.Since(began).Seconds())
}

// TestRealNodePinBudget: with the image filesystem a 1 MiB tmpfs (the
// controller's --containerd-root, which the pin Job measures), the budget
// of 50% is smaller than the image: the pin is refused, with the sizes in
// status.unpinned, and the image stays cached, unpinned.
func TestRealNodePinBudget(t *testing.T) {
	rn := needRealNode(t)
	root := filepath.Join(rn.localDir, fmt.Sprintf("pin-budget-fs-%d", time.Now().UnixNano()))
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mounting a 1 MiB tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, 0); _ = os.Remove(root) })
	ns := newNamespace(t, "real-pin-budget")
	img := rn.image(t, "large", fmt.Sprintf("e2e/pin-budget:v%d", time.Now().Unix()), false)
	rn.controller(t, "--containerd-root="+root, "--pin-budget-percent=50")
	applyNamedCache(t, ns, "big", "  pin: true\n  cacheSpec:\n"+imageList(img)+onRealNode(rn))
	ic := waitIC(t, ns, "big", 3*time.Minute, "Succeeded with its pin refused", func(ic *v1alpha2.ImageCache) bool {
		return done(v1alpha2.ImageCacheActionStatusSucceeded)(ic) && len(ic.Status.Unpinned) > 0
	})
	var found bool
	for _, list := range ic.Status.Unpinned {
		for _, nrm := range list {
			if nrm.Node == rn.name && nrm.Reason == puller.ReasonPinBudgetExceeded && strings.Contains(nrm.Message, "over the budget of 512 KiB (50% of the 1.0 MiB image filesystem)") {
				found = true
			}
		}
	}
	if !found || ic.Status.Pulls.Pinned != 0 {
		t.Errorf("status.unpinned %v, pinned %d; want %s on %s with the sizes", ic.Status.Unpinned, ic.Status.Pulls.Pinned, puller.ReasonPinBudgetExceeded, rn.name)
	}
	if !rn.present(t, img) || rn.pinned(t, img) {
		t.Errorf("%s: present %v, pinned %v; want it cached, unpinned", img, rn.present(t, img), rn.pinned(t, img))
	}
}
