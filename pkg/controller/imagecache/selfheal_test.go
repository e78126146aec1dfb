package imagecache

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// listImages plays the kubelet of a node that reports these images.
func (f *fixture) listImages(node string, names ...string) {
	f.t.Helper()
	n, err := f.kube.CoreV1().Nodes().Get(f.ctx, node, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	n.Status.Images = nil
	for _, name := range names {
		n.Status.Images = append(n.Status.Images, corev1.ContainerImage{Names: []string{name}})
	}
	if _, err := f.kube.CoreV1().Nodes().UpdateStatus(f.ctx, n, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.catchUp()
	f.clearActions()
}

// TestImageGoneIsPulledAgain: an image a cache settled that leaves a node
// listing all its images (the kubelet's image garbage collection took it)
// starts a refresh at once, which pulls it again there, and nowhere else
// (the other pairs stay as they were settled);
// no sooner than a minute after the operation completed (the list may lag);
// and not on a node whose list is cut at the kubelets' limit, where the
// absence proves nothing.
func TestImageGoneIsPulledAgain(t *testing.T) {
	const img = "registry.example/a:v1"
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages(img))},
		newNode("node-a"), newNode("node-b"), newNode("node-c"))
	f.syncStarted("web", times(wCreateJob, 3))
	f.completeAll()
	f.sync("web", wStatus, times(wDeleteJob, 3))
	full := []string{}
	for i := range 50 {
		full = append(full, fmt.Sprintf("registry.example/other-%d:v1", i))
	}
	for _, n := range []string{"node-a", "node-b"} {
		f.listImages(n, img, "registry.example/base:v1")
	}
	f.listImages("node-c", full...) // at the limit of 50: img is not listed, which proves nothing

	f.clock.Step(30 * time.Second)
	f.listImages("node-a", "registry.example/base:v1") // collected
	if writes, after := f.sync("web"); len(writes) != 0 || after != 30*time.Second {
		t.Fatalf("within the list's lag: %s, look again after %v; want nothing, and a look once the lag is over", describe(writes), after)
	}
	f.clock.Step(30 * time.Second)
	f.sync("web", wStatus)
	if st := f.imageCache("web").Status; st.Reason != v1alpha2.ImageCacheReasonRefresh || st.Status != v1alpha2.ImageCacheActionStatusProcessing {
		t.Fatalf("after the image left node-a: %s %s; want a refresh", st.Reason, st.Status)
	}
	f.expectEvent("Warning " + reasons.ImagesGone + " 1 cached image is gone from 1 node (node-a)")
	writes, _ := f.sync("web", wCreateJob)
	jobs := createdJobs(writes)
	if len(jobs) != 1 || jobs[0].Annotations[puller.AnnotationNode] != "node-a" {
		t.Fatalf("the refresh's Jobs: %s; want node-a's alone", describe(writes))
	}
	f.completeAll()
	f.sync("web", wStatus, wDeleteJob)
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Succeeded != 3 {
		t.Errorf("after the pull: %s %+v", st.Status, st.Pulls)
	}
}

// TestAnImageByTagAndDigestIsFoundOnItsNode: an image the spec names by a
// tag and a digest is listed by the kubelet by its digest (and the tag, when
// pulled by it too). It is already present there: no Job; and the refresh
// for images gone never starts for it, however long the cache waits.
func TestAnImageByTagAndDigestIsFoundOnItsNode(t *testing.T) {
	digest := "sha256:" + strings.Repeat("d", 64)
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("registry.example/app:v1@"+digest))},
		newNode("node-a", withNodeImages("registry.example/app@"+digest, "registry.example/app:v1")),
		newNode("node-b", withNodeImages("registry.example/app@"+digest)))
	f.syncStarted("web")
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.AlreadyPresent != 2 {
		t.Fatalf("with the image on both nodes: %s %+v; want Succeeded, both already present", st.Status, st.Pulls)
	}
	f.expectQuiet("web", 5)
}

// TestRefreshForGoneImagesKeepsTheFailures: the refresh for an image gone
// from its node pulls that pair alone: a pair that failed elsewhere (a tag
// that does not exist) is not tried again, and its failure stays listed in
// status.failures throughout.
func TestRefreshForGoneImagesKeepsTheFailures(t *testing.T) {
	const good, bad = "registry.example/a:v1", "registry.example/a:no-such-tag"
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages(good, bad))},
		newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	job := f.jobs()[0]
	msg := `rpc error: code = NotFound desc = failed to pull and unpack image "` + bad + `": not found`
	states := map[string]corev1.ContainerState{}
	for i, img := range jobImages(t, &job) {
		if img == bad {
			states[puller.ContainerName(i)] = waiting("ErrImagePull", msg)
		} else {
			states[puller.ContainerName(i)] = terminatedOK(t0.Add(2 * time.Second))
		}
	}
	f.podWith(job, states)
	f.pulledBy(job, good)
	f.clock.Step(3 * time.Second)
	f.sync("web", wDeleteJob, wPatchJob, wStatus)
	failed := map[string]v1alpha2.NodeReasonMessageList{bad: {{Node: "node-a", Reason: puller.ReasonImageNotFound, Message: msg}}}
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusFailed || !cmp.Equal(failed, st.Failures) {
		t.Fatalf("after the pull: %s, failures %v", st.Status, st.Failures)
	}
	f.listImages("node-a", good, "registry.example/base:v1")

	f.clock.Step(2 * time.Minute)
	f.listImages("node-a", "registry.example/base:v1") // collected
	f.sync("web", wStatus)
	st := f.imageCache("web").Status
	if st.Reason != v1alpha2.ImageCacheReasonRefresh || !cmp.Equal(failed, st.Failures) {
		t.Fatalf("the refresh for the gone image: %s, failures %v; want the failure kept", st.Reason, st.Failures)
	}
	writes, _ := f.sync("web", wCreateJob)
	if jobs := createdJobs(writes); len(jobs) != 1 || !slices.Equal(jobImages(t, jobs[0]), []string{good}) {
		t.Fatalf("the refresh's Jobs: %s; want one pulling %s alone", describe(writes), good)
	}
	f.completeAll()
	f.sync("web", wStatus, wDeleteJob)
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusFailed || !cmp.Equal(failed, st.Failures) ||
		st.Pulls.Succeeded != 1 || st.Pulls.Failed != 1 {
		t.Errorf("after the refresh: %s %+v, failures %v", st.Status, st.Pulls, st.Failures)
	}
}

// TestAnImageWithFiveNamesMayLackTheCachedTag: the kubelet lists at most
// five names of an image: an image with more may be listed without the
// cached tag, though the node has it. Such a list is not whole: the tag's
// absence from it proves nothing, so no refresh starts for it, however long
// the cache waits.
func TestAnImageWithFiveNamesMayLackTheCachedTag(t *testing.T) {
	const img = "registry.example/app:v1"
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages(img))}, newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	f.completeAll()
	f.sync("web", wStatus, wDeleteJob)
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Fatalf("after the pull: %s", st.Status)
	}
	// The node has the image under six names; the kubelet lists five, not
	// the cached tag.
	n, err := f.kube.CoreV1().Nodes().Get(f.ctx, "node-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Images = []corev1.ContainerImage{{Names: []string{"registry.example/app@sha256:" + strings.Repeat("d", 64),
		"registry.example/app:v0", "registry.example/app:v2", "registry.example/app:stable", "registry.example/app:prod"}},
		{Names: []string{"registry.example/base:v1"}}}
	if _, err := f.kube.CoreV1().Nodes().UpdateStatus(f.ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.catchUp()
	f.clearActions()
	f.expectQuiet("web", 5)
}

// expectQuiet checks that a settled cache, synced once a minute for some
// minutes, writes nothing and starts no refresh for images gone.
func (f *fixture) expectQuiet(name string, minutes int) {
	f.t.Helper()
	for range minutes {
		f.clock.Step(time.Minute)
		if writes, _ := f.sync(name); len(writes) != 0 {
			f.t.Fatalf("%v after Succeeded: %s; want nothing", f.clock.Since(t0), describe(writes))
		}
	}
	if evs := f.events(); slices.ContainsFunc(evs, func(e string) bool { return strings.Contains(e, reasons.ImagesGone) }) {
		f.t.Errorf("events %q; want no %s", evs, reasons.ImagesGone)
	}
}
