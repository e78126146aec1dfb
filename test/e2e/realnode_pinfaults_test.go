//go:build e2e

package e2e

// Pins against faults on the real node: whatever happens to a pin or unpin
// on its way (its pod killed, its cache deleted under it, containerd's
// socket gone for a while, the controller SIGKILLed, two caches at once, the
// Node deleted and registered again, pin turned off and the cache deleted
// at once), each test ends with the node's image records read through
// containerd's own API: no kubefledged.io/pinned-by.<UID> label of a cache
// that no longer exists, and io.cri-containerd.pinned only where a live
// cache, or a pin from before any cache's, holds it.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"google.golang.org/grpc/metadata"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// records returns containerd's records of an image's content: every name
// whose target is the image's digest.
func (rn *realNode) records(t *testing.T, image string) []*imagesapi.Image {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cri.Dial(ctx, rn.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx = metadata.AppendToOutgoingContext(ctx, "containerd-namespace", "k8s.io")
	store := imagesapi.NewImagesClient(c.Conn())
	st := rn.imageStatus(t, image)
	if st == nil {
		return nil
	}
	var digest string
	for _, d := range st.GetRepoDigests() {
		if _, dd, ok := strings.Cut(d, "@"); ok {
			digest = dd
		}
	}
	if digest == "" {
		t.Fatalf("the runtime reports no digest of %s: %v", image, st)
	}
	resp, err := store.List(ctx, &imagesapi.ListImagesRequest{Filters: []string{"target.digest==" + digest}})
	if err != nil {
		t.Fatalf("listing containerd's records of %s: %v", digest, err)
	}
	return resp.GetImages()
}

// liveCaches returns the UIDs of the ImageCaches that exist.
func liveCaches(t *testing.T) map[string]bool {
	t.Helper()
	list, err := fledged.KubefledgedV1alpha2().ImageCaches("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, ic := range list.Items {
		out[string(ic.UID)] = true
	}
	return out
}

// checkPins reads the records of each image through containerd's API and
// fails the test where a pin label belongs to no live cache, or where
// containerd's pin has nothing to hold it: no live cache's label, no mark
// of a pin from before the caches'. It returns whether the CRI reports each
// image pinned.
func (rn *realNode) checkPins(t *testing.T, imgs ...string) map[string]bool {
	t.Helper()
	live := liveCaches(t)
	out := map[string]bool{}
	for _, img := range imgs {
		for _, rec := range rn.records(t, img) {
			labels := rec.GetLabels()
			held := labels[cri.LabelPinPredates] != ""
			for k, v := range labels {
				uid, ok := strings.CutPrefix(k, cri.LabelPinnedByPrefix)
				if !ok {
					continue
				}
				if !live[uid] {
					t.Errorf("%s: containerd's record %s keeps the pin label of the cache %s (%s), which no longer exists", img, rec.GetName(), uid, v)
				}
				held = held || live[uid]
			}
			if labels[cri.LabelPinned] == cri.PinnedValue && !held {
				t.Errorf("%s: containerd's record %s is pinned with no live cache's label and no earlier pin: labels %v", img, rec.GetName(), labels)
			}
		}
		out[img] = rn.pinned(t, img)
	}
	return out
}

// deleteAndWait deletes a cache and waits for it to go.
func deleteAndWait(t *testing.T, ns, name string, timeout time.Duration) {
	t.Helper()
	ic, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	waitFor(t, timeout, "cache "+name+" to go", func() bool {
		_, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Get(context.Background(), name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	// Its ledger's slices go after it, with the garbage collector.
	waitFor(t, time.Minute, "the slices of cache "+name+" to go", func() bool {
		list, err := fledgedtest.Slices(context.Background(), fledged, ic)
		return err == nil && len(list) == 0
	})
}

// pinJobAppears waits for a pin (or unpin) Job of a cache in the
// controller's namespace.
func pinJobAppears(t *testing.T, uid types.UID, component string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, component+" Job of cache "+string(uid), func() bool {
		jobs, err := kubeClient.BatchV1().Jobs(sampleNS).List(context.Background(), metav1.ListOptions{
			LabelSelector: puller.LabelComponent + "=" + component + "," + puller.LabelCacheUID + "=" + string(uid)})
		return err == nil && len(jobs.Items) > 0
	})
}

const pinSpec = "  pin: true\n  cacheSpec:\n"

// pinnedOnRealNode starts a controller, and a pinning cache of a new image
// on the real node, in a namespace of its own, and waits for the pin.
func pinnedOnRealNode(t *testing.T, nsPrefix, repo, name string) (rn *realNode, ns, img string) {
	t.Helper()
	rn = needRealNode(t)
	ns = newNamespace(t, nsPrefix)
	img = rn.image(t, "shell", fmt.Sprintf("e2e/%s:v%d", repo, time.Now().Unix()), false)
	rn.controller(t, "--containerd-root="+rn.containerdRoot)
	applyNamedCache(t, ns, name, pinSpec+imageList(img)+onRealNode(rn))
	waitIC(t, ns, name, 3*time.Minute, "Succeeded with its image pinned", pinnedAll(1))
	return rn, ns, img
}

// TestRealNodePinPodKilled: the pin pods of a cache are deleted as soon as
// they run, whatever they had labelled by then; the cache settles, and
// once deleted leaves no pin of its own on the node.
func TestRealNodePinPodKilled(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-pin-killed")
	stamp := time.Now().Unix()
	imgs := []string{rn.image(t, "shell", fmt.Sprintf("e2e/pin-killed-a:v%d", stamp), false),
		rn.image(t, "noshell", fmt.Sprintf("e2e/pin-killed-b:v%d", stamp), false)}
	rn.controller(t, "--containerd-root="+rn.containerdRoot)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	w, err := kubeClient.CoreV1().Pods(sampleNS).Watch(ctx, metav1.ListOptions{LabelSelector: puller.LabelComponent + "=" + puller.ComponentPin})
	if err != nil {
		t.Fatal(err)
	}
	killed := make(chan string, 16)
	go func() {
		// Every pin pod dies once it runs, until the test says stop.
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
				continue
			}
			zero := int64(0)
			if kubeClient.CoreV1().Pods(sampleNS).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}) == nil {
				select {
				case killed <- p.Name:
				default:
				}
			}
		}
	}()
	applyNamedCache(t, ns, "killed", pinSpec+imageList(imgs...)+onRealNode(rn))
	select {
	case name := <-killed:
		t.Logf("killed the pin pod %s while it ran", name)
	case <-time.After(3 * time.Minute):
		stop()
		t.Fatal("no pin pod ran within 3 minutes")
	}
	stop()
	ic := waitIC(t, ns, "killed", 3*time.Minute, "settled", func(ic *v1alpha2.ImageCache) bool {
		return ic.Status.Status == v1alpha2.ImageCacheActionStatusSucceeded || ic.Status.Status == v1alpha2.ImageCacheActionStatusFailed
	})
	t.Logf("after the kill: %s %q, pinned %d, unpinned %v", ic.Status.Status, ic.Status.Message, ic.Status.Pulls.Pinned, ic.Status.Unpinned)
	rn.checkPins(t, imgs...)
	deleteAndWait(t, ns, "killed", 3*time.Minute)
	for img, pinned := range rn.checkPins(t, imgs...) {
		if pinned {
			t.Errorf("%s is still pinned after its only cache went", img)
		}
	}
}

// TestRealNodeCacheDeletedWhilePinning: a cache deleted as soon as its pin
// Job exists lets that Job go, then takes away what it may have pinned.
func TestRealNodeCacheDeletedWhilePinning(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-pin-deleted-early")
	img := rn.image(t, "shell", fmt.Sprintf("e2e/pin-deleted-early:v%d", time.Now().Unix()), false)
	rn.controller(t, "--containerd-root="+rn.containerdRoot)
	applyNamedCache(t, ns, "early", pinSpec+imageList(img)+onRealNode(rn))
	pinJobAppears(t, getIC(t, ns, "early").UID, puller.ComponentPin, 3*time.Minute)
	deleteAndWait(t, ns, "early", 3*time.Minute)
	if rn.checkPins(t, img)[img] {
		t.Errorf("%s is still pinned after its only cache went", img)
	}
}

// TestRealNodeUnpinFailsThenSucceeds: containerd's socket refuses the
// unpin of a deleted cache for a minute: the cache stays, its finalizer
// held, status.failures saying UnpinFailed; once the socket answers again,
// an unpin tried again (a Job of another name) takes the pin away and the
// cache goes.
func TestRealNodeUnpinFailsThenSucceeds(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-unpin-fails")
	img := rn.image(t, "shell", fmt.Sprintf("e2e/unpin-fails:v%d", time.Now().Unix()), false)
	proxy := newSocketProxy(t, rn.socket)
	rn.controller(t, "--containerd-root="+rn.containerdRoot, "--cri-socket-path="+proxy.path)
	applyNamedCache(t, ns, "flaky", pinSpec+imageList(img)+onRealNode(rn))
	waitIC(t, ns, "flaky", 3*time.Minute, "Succeeded with its image pinned", pinnedAll(1))
	if !rn.checkPins(t, img)[img] {
		t.Fatalf("%s not pinned", img)
	}
	proxy.down()
	downAt := time.Now()
	if err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Delete(context.Background(), "flaky", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ic := waitIC(t, ns, "flaky", 3*time.Minute, "an UnpinFailed failure", func(ic *v1alpha2.ImageCache) bool {
		for _, l := range ic.Status.Failures {
			for _, f := range l {
				if f.Reason == reasons.UnpinFailed {
					return true
				}
			}
		}
		return false
	})
	t.Logf("unpin failed: %v", ic.Status.Failures)
	if !rn.pinned(t, img) {
		t.Errorf("%s unpinned though containerd's socket refused the unpin", img)
	}
	waitFor(t, time.Until(downAt.Add(time.Minute)), "a minute of refused unpins", func() bool {
		if _, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Get(context.Background(), "flaky", metav1.GetOptions{}); err != nil {
			t.Fatalf("the cache went while its unpin failed: %v", err)
		}
		return time.Since(downAt) >= time.Minute-time.Second
	})
	proxy.up(t)
	deleteAndWait(t, ns, "flaky", 5*time.Minute)
	if rn.checkPins(t, img)[img] {
		t.Errorf("%s is still pinned after its cache went", img)
	}
}

// TestRealNodeControllerKilledWhilePinning: the controller is SIGKILLed
// once the pin Job exists, and again once the unpin Job of the deleted cache
// exists; started again each time, it pins, then unpins and lets the cache
// go.
func TestRealNodeControllerKilledWhilePinning(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-pin-sigkill")
	img := rn.image(t, "shell", fmt.Sprintf("e2e/pin-sigkill:v%d", time.Now().Unix()), false)
	args := []string{"--containerd-root=" + rn.containerdRoot}
	proc := rn.controller(t, args...)
	applyNamedCache(t, ns, "killed", pinSpec+imageList(img)+onRealNode(rn))
	uid := getIC(t, ns, "killed").UID
	pinJobAppears(t, uid, puller.ComponentPin, 3*time.Minute)
	proc.kill(t)
	proc = rn.controller(t, args...)
	waitIC(t, ns, "killed", 3*time.Minute, "Succeeded with its image pinned", pinnedAll(1))
	rn.checkPins(t, img)
	if err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Delete(context.Background(), "killed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	pinJobAppears(t, uid, puller.ComponentUnpin, 3*time.Minute)
	proc.kill(t)
	rn.controller(t, args...)
	deleteAndWait(t, ns, "killed", 3*time.Minute)
	if rn.checkPins(t, img)[img] {
		t.Errorf("%s is still pinned after its cache went", img)
	}
}

// TestRealNodeTwoCachesPinAndUnpinAtOnce: two caches of one image, one
// turning pin on while the other turns it off, ten rounds: after each, the
// image is pinned exactly when a cache pins it, and the labels say whose.
func TestRealNodeTwoCachesPinAndUnpinAtOnce(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-pin-race")
	img := rn.image(t, "shell", fmt.Sprintf("e2e/pin-race:v%d", time.Now().Unix()), false)
	rn.controller(t, "--containerd-root="+rn.containerdRoot)
	spec := func(pin bool) string {
		return fmt.Sprintf("  pin: %v\n  cacheSpec:\n", pin) + imageList(img) + onRealNode(rn)
	}
	applyNamedCache(t, ns, "a", spec(true))
	applyNamedCache(t, ns, "b", spec(false))
	waitIC(t, ns, "a", 3*time.Minute, "Succeeded with its image pinned", pinnedAll(1))
	for round := range 10 {
		aPins := round%2 == 1
		var wg sync.WaitGroup
		for name, pin := range map[string]bool{"a": aPins, "b": !aPins} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				patch := fmt.Sprintf(`{"spec":{"pin":%v}}`, pin)
				if _, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		for name, pin := range map[string]bool{"a": aPins, "b": !aPins} {
			want := int32(0)
			if pin {
				want = 1
			}
			waitIC(t, ns, name, 3*time.Minute, fmt.Sprintf("round %d settled, %d pinned", round, want), func(ic *v1alpha2.ImageCache) bool {
				return ic.Status.ObservedGeneration == ic.Generation && pinnedAll(want)(ic) && (pin || len(ledgerOf(t, ic).PinNodes()) == 0)
			})
		}
		if !rn.checkPins(t, img)[img] {
			t.Fatalf("round %d: %s is not pinned, though one cache pins it", round, img)
		}
	}
	deleteAndWait(t, ns, "a", 3*time.Minute)
	deleteAndWait(t, ns, "b", 3*time.Minute)
	if rn.checkPins(t, img)[img] {
		t.Errorf("%s is still pinned after both caches went", img)
	}
}

// TestRealNodeNodeRegisteredAgainKeepsPins: the node's Node is deleted and
// registered again (its disk, and the labels on it, stay): the cache pins
// there again, and once deleted leaves no pin.
func TestRealNodeNodeRegisteredAgainKeepsPins(t *testing.T) {
	rn, ns, img := pinnedOnRealNode(t, "real-pin-rejoin", "pin-rejoin", "rejoin")
	rn.leave(t)
	rn.join(t)
	waitFor(t, 2*time.Minute, "the node to be Ready again", func() bool {
		n, err := kubeClient.CoreV1().Nodes().Get(context.Background(), rn.name, metav1.GetOptions{})
		return err == nil && nodeReady(n)
	})
	ic := waitIC(t, ns, "rejoin", 4*time.Minute, "a pin held on the node registered again", func(ic *v1alpha2.ImageCache) bool {
		return len(ledgerOf(t, ic).PinsOn(rn.name)) > 0
	})
	t.Logf("after the node came back: %s %q", ic.Status.Status, ic.Status.Message)
	deleteAndWait(t, ns, "rejoin", 3*time.Minute)
	if rn.checkPins(t, img)[img] {
		t.Errorf("%s is still pinned after its cache went", img)
	}
}

// TestRealNodePinOffThenDeleted: spec.pin turned off and the cache deleted
// at once: the unpin still runs, and the cache goes with no pin left.
func TestRealNodePinOffThenDeleted(t *testing.T) {
	rn, ns, img := pinnedOnRealNode(t, "real-pin-off-deleted", "pin-off-deleted", "pin-off")
	if _, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Patch(context.Background(), "pin-off", types.MergePatchType,
		[]byte(`{"spec":{"pin":false}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	deleteAndWait(t, ns, "pin-off", 3*time.Minute)
	if rn.checkPins(t, img)[img] {
		t.Errorf("%s is still pinned after its cache went", img)
	}
}
