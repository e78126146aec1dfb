package imagecache

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// failingSet is a failure set of images × nodes, each with a long message.
func failingSet(images, nodes int) (failureSet, map[string]int) {
	f := failureSet{}
	total := map[string]int{}
	for i := range images {
		img := fmt.Sprintf("registry.example/team/app-%03d:v1", i)
		for n := range nodes {
			f.add(img, fmt.Sprintf("node-%05d", n), "ErrImagePull", strings.Repeat("x", 400)+" not found")
		}
		total[img] = nodes
	}
	return f, total
}

// TestFailuresAreBoundedInAll: per image and in all, with every image shown,
// the messages shortened, and what is left out counted.
func TestFailuresAreBoundedInAll(t *testing.T) {
	for _, tc := range []struct{ images, nodes, perImage int }{
		{images: 3, nodes: 300, perImage: 100}, // the per-image cap
		{images: 10, nodes: 300, perImage: 50}, // the total cap, shared
		{images: 100, nodes: 5000, perImage: 5},
	} {
		t.Run(fmt.Sprintf("%dx%d", tc.images, tc.nodes), func(t *testing.T) {
			f, total := failingSet(tc.images, tc.nodes)
			out, omitted := f.render(total)
			listed, left := 0, 0
			for img, list := range out {
				if len(list) != tc.perImage {
					t.Errorf("%s: %d listed, want %d", img, len(list), tc.perImage)
				}
				if list[0].Node != "node-00000" || len(list[0].Message) > maxFailureMessage || !strings.HasSuffix(list[0].Message, " not found") {
					t.Errorf("%s: first entry %+v", img, list[0])
				}
				listed += len(list)
				left += int(omitted[img])
			}
			if len(out) != tc.images || listed > v1alpha2.MaxFailures || listed+left != tc.images*tc.nodes {
				t.Errorf("%d images listed, %d failures listed and %d left out; want %d images, at most %d listed, %d in all",
					len(out), listed, left, tc.images, v1alpha2.MaxFailures, tc.images*tc.nodes)
			}
		})
	}
}

// TestFitStatusDegrades: a status over its budget (here, from a ledger near
// its limit and long messages) is trimmed under it, counting what it left out.
func TestFitStatusDegrades(t *testing.T) {
	f, total := failingSet(100, 5000)
	st := &v1alpha2.ImageCacheStatus{Ledger: &v1alpha2.PullLedger{Nodes: map[string]string{}}}
	for n := range 9000 {
		st.Ledger.Nodes[fmt.Sprintf("node-%05d", n)] = strings.Repeat("A", 60)
	}
	st.Failures, st.OmittedFailures = f.render(total)
	if statusSize(st) <= statusBudget {
		t.Fatalf("the test status is only %d bytes", statusSize(st))
	}
	if !fitStatus(st) {
		t.Fatal("fitStatus did not trim")
	}
	if size := statusSize(st); size > statusBudget {
		t.Errorf("still %d bytes, over %d", size, statusBudget)
	}
	if n := omittedTotal(st); n < 100*5000-v1alpha2.MaxFailures || len(st.Failures) == 0 {
		t.Errorf("omitted %d, listed for %d images", n, len(st.Failures))
	}
	listed := 0
	for _, list := range st.Failures {
		listed += len(list)
		for _, nrm := range list {
			if len(nrm.Message) > shortFailureMessage {
				t.Fatalf("message of %d bytes", len(nrm.Message))
			}
		}
	}
	if listed+omittedTotal(st) != 100*5000 {
		t.Errorf("%d listed + %d omitted, want %d", listed, omittedTotal(st), 100*5000)
	}
	if fitStatus(st) {
		t.Error("a status that fits was trimmed again")
	}
}

// TestTooLargeCacheIsRefused: a cache whose ledger could not fit in one
// object is Failed at once with the reason, and gets no Job.
func TestTooLargeCacheIsRefused(t *testing.T) {
	var imgs []string
	for i := range 2048 {
		imgs = append(imgs, fmt.Sprintf("registry.example/app-%04d:v1", i))
	}
	var nodes []*corev1.Node
	for i := range 1000 {
		nodes = append(nodes, newNode(fmt.Sprintf("node-%04d", i)))
	}
	ic := newImageCache("huge")
	for i := 0; i < len(imgs); i += v1alpha2.MaxImagesPerEntry {
		ic.Spec.CacheSpec = append(ic.Spec.CacheSpec, v1alpha2.CacheSpecImages{Images: imgs[i : i+v1alpha2.MaxImagesPerEntry]})
	}
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{ic}, nodes...)
	f.sync("huge", wStatus) // starts the operation
	writes, _ := f.sync("huge")
	if len(createdJobs(writes)) != 0 {
		t.Errorf("a too large cache made %d Jobs", len(createdJobs(writes)))
	}
	st := f.imageCache("huge").Status
	if st.Status != v1alpha2.ImageCacheActionStatusFailed || !strings.HasPrefix(st.Message, "The cache is too large: 1000 nodes and 2048 images need about ") {
		t.Errorf("status %s %q", st.Status, st.Message)
	}
	f.expectEvent("Warning TooLarge The cache is too large")
	if w, _ := f.sync("huge"); len(w) != 0 {
		t.Errorf("a second sync wrote %s", describe(w))
	}
}
