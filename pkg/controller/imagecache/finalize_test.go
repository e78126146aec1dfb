package imagecache

import (
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pins"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// TestPinningCacheGetsTheFinalizer: a cache that pins gets FinalizerUnpin
// at its first pass, before any pin; it keeps it while it holds pins, and
// loses it once pin is off and its pins are gone.
func TestPinningCacheGetsTheFinalizer(t *testing.T) {
	ic := newImageCache("web", withImages("registry.example/a:v1"))
	ic.Spec.Pin = true
	f := newFixture(t, pinConfig(), []*v1alpha2.ImageCache{ic}, newNode("node-a", withRuntime(ctd)))
	f.sync("web", wAnnotation, wStatus)
	if got := f.imageCache("web").Finalizers; !slices.Equal(got, []string{FinalizerUnpin}) {
		t.Fatalf("finalizers %v, want %s", got, FinalizerUnpin)
	}
	f.sync("web", wCreateJob)
	f.completeAll()
	f.sync("web", wCreateJob, wStatus)
	f.finishPinJob(f.pinJobsOf()[0], "outcomes p")
	f.sync("web", wStatus, times(wDeleteJob, 2))

	f.edit("web", func(ic *v1alpha2.ImageCache) { ic.Spec.Pin = false; ic.Generation = 2 })
	f.clock.Step(time.Second)
	f.syncStarted("web", wCreateJob) // the unpin; the finalizer stays while the pin does
	if got := f.imageCache("web").Finalizers; !slices.Equal(got, []string{FinalizerUnpin}) {
		t.Fatalf("finalizers while the pin is held: %v", got)
	}
	f.finishPinJob(f.pinJobsOf()[0], "outcomes u")
	f.sync("web", wStatus, times(wDeleteJob, 1))
	f.sync("web", wAnnotation)
	if got := f.imageCache("web").Finalizers; len(got) != 0 {
		t.Errorf("finalizers after the last unpin: %v; want none", got)
	}
}

// deleteCache plays the API server for a delete of a cache with
// finalizers: it sets the deletion time.
func (f *fixture) deleteCache(name string) {
	f.t.Helper()
	f.edit(name, func(ic *v1alpha2.ImageCache) {
		now := metav1.NewTime(f.clock.Now())
		ic.DeletionTimestamp = &now
	})
}

// TestDeletedCacheUnpins: a deleted pinning cache takes its pins away on
// every node still there, then lets the cache go; a node that is gone
// holds nothing; one that does not answer holds the deletion no longer than
// the unpin timeout, and a Warning event names it.
func TestDeletedCacheUnpins(t *testing.T) {
	const img = "registry.example/a:v1"
	setup := func(t *testing.T) *fixture {
		web := newImageCache("web", withPin, withImages(img))
		f := newFixture(t, pinConfig(), []*v1alpha2.ImageCache{web}, newNode("node-a", withRuntime(ctd)),
			newNode("node-b", withRuntime(ctd)), newNode("node-c", withRuntime(ctd)))
		f.syncStarted("web", times(wCreateJob, 3))
		f.completeAll()
		f.sync("web", times(wCreateJob, 3), wStatus)
		for _, j := range f.pinJobsOf() {
			f.finishPinJob(j, "outcomes p")
		}
		f.sync("web", wStatus, times(wDeleteJob, 6))
		if st := f.imageCache("web").Status; st.Pulls.Pinned != 3 {
			t.Fatalf("pinned %+v", st.Pulls)
		}
		// node-c goes away; the cache is deleted.
		if err := f.kube.CoreV1().Nodes().Delete(f.ctx, "node-c", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		f.catchUp()
		f.deleteCache("web")
		return f
	}
	t.Run("every node unpinned", func(t *testing.T) {
		f := setup(t)
		// The pins' intents go to the ledger's slice; the status does not
		// change.
		writes, _ := f.sync("web", times(wCreateJob, 2))
		if n := len(sliceWrites(writes)); n != 1 {
			t.Errorf("%d slice writes, want the one that records the unpins under way", n)
		}
		for _, j := range createdJobs(writes) {
			if !puller.IsUnpinJob(j) || j.Namespace != testControllerNS {
				t.Errorf("want unpin Jobs in %s, got %s", testControllerNS, describe(writes))
			}
		}
		for _, j := range f.pinJobsOf() {
			f.finishPinJob(j, "outcomes u")
		}
		f.sync("web", times(wDeleteJob, 2), wAnnotation)
		if got := f.imageCache("web").Finalizers; len(got) != 0 {
			t.Errorf("finalizers after the unpins: %v", got)
		}
		if nodes := f.ledger("web").PinNodes(); !slices.Equal(nodes, []string{"node-c"}) {
			t.Errorf("the ledger's slices hold pins on %v after the unpins; want only on node-c, which is gone", nodes)
		}
		f.expectEvent("Normal " + reasons.Unpinned)
	})
	t.Run("a node that does not answer", func(t *testing.T) {
		f := setup(t)
		_, after := f.sync("web", times(wCreateJob, 2))
		if after != pins.DefaultUnpinTimeout {
			// The unpin Jobs' events bring it back before: no polling.
			t.Errorf("look again after %v, want at the unpin timeout, %v", after, pins.DefaultUnpinTimeout)
		}
		for _, j := range f.pinJobsOf() {
			if j.Annotations[puller.AnnotationNode] == "node-a" {
				f.finishPinJob(j, "outcomes u")
			}
		}
		f.sync("web", wDeleteJob)
		if got := f.imageCache("web").Finalizers; len(got) != 1 {
			t.Fatalf("the finalizer went while node-b holds a pin: %v", got)
		}
		f.clock.Step(pins.DefaultUnpinTimeout)
		f.sync("web", wDeleteJob, wAnnotation)
		if got := f.imageCache("web").Finalizers; len(got) != 0 {
			t.Errorf("finalizers past the unpin timeout: %v", got)
		}
		f.expectEvent("Warning " + reasons.PinsNotReleased)
	})
	t.Run("past the unpin timeout no Job slot is kept", func(t *testing.T) {
		f := setup(t)
		f.sync("web", times(wCreateJob, 2))
		// node-b's unpin Job goes (someone deleted it), and the unpin
		// timeout passes before another is made.
		for _, j := range f.pinJobsOf() {
			if j.Annotations[puller.AnnotationNode] == "node-b" {
				if err := f.kube.BatchV1().Jobs(j.Namespace).Delete(f.ctx, j.Name, metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		f.catchUp()
		f.clock.Step(pins.DefaultUnpinTimeout)
		f.sync("web", wDeleteJob, wAnnotation)
		if got := f.imageCache("web").Finalizers; len(got) != 0 {
			t.Fatalf("finalizers past the unpin timeout: %v", got)
		}
		if n, _ := f.c.expectations.PendingCreates(); n != 0 {
			t.Errorf("%d Job slots held after the finalizer gave up, for Jobs it did not create; want none", n)
		}
	})
}

// TestPinAgainAfterAnAlwaysPull: a refresh pulls an image of pullPolicy
// Always again, which may move its tag, and containerd drops a moved
// record's labels: its pin is set again (stale meanwhile, still the cache's
// to take away).
func TestPinAgainAfterAnAlwaysPull(t *testing.T) {
	const img = "registry.example/app:stable"
	web := newImageCache("web", withPin, withImages(img))
	web.Spec.CacheSpec[0].PullPolicy = v1alpha2.PullAlways
	f := newFixture(t, pinConfig(), []*v1alpha2.ImageCache{web}, newNode("node-a", withRuntime(ctd)))
	f.syncStarted("web", wCreateJob)
	f.completeAll()
	f.sync("web", wCreateJob, wStatus)
	f.finishPinJob(f.pinJobsOf()[0], "outcomes p")
	f.sync("web", wStatus, times(wDeleteJob, 2))

	f.annotate("web", v1alpha2.AnnotationRefresh)
	f.clock.Step(time.Second)
	f.syncStarted("web", wCreateJob) // the pull
	f.completeAll()
	writes, _ := f.sync("web", wCreateJob, wStatus)
	jobs := createdJobs(writes)
	if len(jobs) != 1 || !puller.IsPinJob(jobs[0]) || puller.IsUnpinJob(jobs[0]) {
		t.Fatalf("after the Always pull: %s; want the pin again", describe(writes))
	}
	if s := f.pinState("web", "node-a", img); s != ledger.PinUnsure {
		t.Errorf("pin before it is set again: %v, want %v", s, ledger.PinUnsure)
	}
	f.finishPinJob(f.pinJobsOf()[0], "outcomes p")
	f.syncOnly("web", wStatus, wDeleteJob, wAnnotation)
	if s := f.pinState("web", "node-a", img); s != ledger.Pinned {
		t.Errorf("pin after it was set again: %v", s)
	}
}

// TestPinJobOnK3sUsesItsSocket: a node of k3s (or RKE2), whose containerd
// says -k3s in its version, gets its pin Job on k3s's own socket.
func TestPinJobOnK3sUsesItsSocket(t *testing.T) {
	f := newFixture(t, pinConfig(), []*v1alpha2.ImageCache{newImageCache("web", withPin, withImages("registry.example/a:v1"))},
		newNode("node-a", withRuntime("containerd://1.7.23-k3s2")))
	f.syncStarted("web", wCreateJob)
	f.completeAll()
	writes, _ := f.sync("web", wCreateJob, wStatus)
	jobs := createdJobs(writes)
	if len(jobs) != 1 || jobs[0].Labels[puller.LabelComponent] != puller.ComponentPin {
		t.Fatalf("pin Jobs: %s", describe(writes))
	}
	var sockets []string
	for _, v := range jobs[0].Spec.Template.Spec.Volumes {
		if v.HostPath != nil && strings.HasSuffix(v.HostPath.Path, ".sock") {
			sockets = append(sockets, v.HostPath.Path)
		}
	}
	if len(sockets) != 1 || sockets[0] != "/run/k3s/containerd/containerd.sock" {
		t.Errorf("the pin Job mounts the sockets %v; want k3s's /run/k3s/containerd/containerd.sock", sockets)
	}
}
