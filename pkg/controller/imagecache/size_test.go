package imagecache

import (
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	core "k8s.io/client-go/testing"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// hugeCache wants 2,048 images on every node: more than a cache may list
// (plan.MaxImages).
func hugeCache() *v1alpha2.ImageCache {
	var imgs []string
	for i := range 2048 {
		imgs = append(imgs, fmt.Sprintf("registry.example/app-%04d:v1", i))
	}
	ic := newImageCache("huge")
	for i := 0; i < len(imgs); i += v1alpha2.MaxImagesPerEntry {
		ic.Spec.CacheSpec = append(ic.Spec.CacheSpec, v1alpha2.CacheSpecImages{Images: imgs[i : i+v1alpha2.MaxImagesPerEntry]})
	}
	return ic
}

func thousandNodes() []*corev1.Node {
	var nodes []*corev1.Node
	for i := range 1000 {
		nodes = append(nodes, newNode(fmt.Sprintf("node-%04d", i)))
	}
	return nodes
}

// TestTooLargeCacheIsRefused: a cache that lists more images than a cache
// may is Failed at once with the reason, and gets no Job.
func TestTooLargeCacheIsRefused(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{hugeCache()}, thousandNodes()...)
	f.sync("huge", wStatus) // starts the operation
	writes, _ := f.sync("huge")
	if len(createdJobs(writes)) != 0 {
		t.Errorf("a too large cache made %d Jobs", len(createdJobs(writes)))
	}
	st := f.imageCache("huge").Status
	if st.Status != v1alpha2.ImageCacheActionStatusFailed || !strings.HasPrefix(st.Message, "The cache is too large: it lists 2048 images, over the 1024") {
		t.Errorf("status %s %q", st.Status, st.Message)
	}
	f.expectEvent("Warning TooLarge The cache is too large")
	if w, _ := f.sync("huge"); len(w) != 0 {
		t.Errorf("a second sync wrote %s", describe(w))
	}
}

// TestTooLargeCacheConsumesItsAnnotations: a refresh asked of a cache that
// is too large ends as the create did, refused, and the annotation goes
// with it (an event says so), so that no operation starts again on every
// pass; a purge asked of it runs (nothing was pulled, so it removes nothing)
// and ends.
func TestTooLargeCacheConsumesItsAnnotations(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{hugeCache()}, thousandNodes()...)
	f.sync("huge", wStatus) // refused at once
	f.events()

	f.annotate("huge", v1alpha2.AnnotationRefresh)
	f.clock.Step(2 * time.Second)
	f.sync("huge", wAnnotation, wStatus)
	if _, ok := f.imageCache("huge").Annotations[v1alpha2.AnnotationRefresh]; ok {
		t.Error("the refresh annotation stays on a cache refused as too large")
	}
	f.expectEvent("Warning TooLarge The cache is too large")
	f.clock.Step(2 * time.Second)
	if w, _ := f.sync("huge"); len(w) != 0 {
		t.Errorf("a pass after the refused refresh wrote %s", describe(w))
	}

	f.annotate("huge", v1alpha2.AnnotationPurge)
	f.clock.Step(2 * time.Second)
	f.syncOnly("huge", wAnnotation, wStatus)
	f.syncOnly("huge", wAnnotation, wStatus)
	st := f.imageCache("huge").Status
	if st.Reason != v1alpha2.ImageCacheReasonPurge || st.Status == v1alpha2.ImageCacheActionStatusProcessing {
		t.Errorf("the purge of a too large cache: %s %s %q", st.Reason, st.Status, st.Message)
	}
	if _, ok := f.imageCache("huge").Annotations[v1alpha2.AnnotationPurge]; ok {
		t.Error("the purge annotation stays")
	}
	f.clock.Step(2 * time.Second)
	if w, _ := f.sync("huge"); len(w) != 0 {
		t.Errorf("a pass after the purge wrote %s", describe(w))
	}
}

// TestStatusRefusedAsTooLargeDegrades: should the API server refuse a
// status write as too large all the same, the status is written again
// without its failure list (counted in omittedFailures), with a Warning,
// instead of failing every write.
func TestStatusRefusedAsTooLargeDegrades(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	refused := 0
	f.client.PrependReactor("update", "imagecaches", func(a core.Action) (bool, runtime.Object, error) {
		if ic := a.(core.UpdateAction).GetObject().(*v1alpha2.ImageCache); len(ic.Status.Failures) > 0 {
			refused++
			return true, nil, apierrors.NewRequestEntityTooLargeError("limit is 3145728")
		}
		return false, nil, nil
	})
	for _, j := range f.jobs() {
		f.podWith(j, map[string]corev1.ContainerState{puller.ContainerName(0): waiting("ErrImagePull", "401 Unauthorized")})
		j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue})
		f.updateJob(&j)
	}
	f.sync("web", wDeleteJob, times(wStatus, 2)) // the refused write, then the one without the list
	st := f.imageCache("web").Status
	if refused != 1 || st.Status != v1alpha2.ImageCacheActionStatusFailed || len(st.Failures) != 0 || st.OmittedFailures["nginx"] != 1 {
		t.Errorf("refused %d; status %s failures %v omitted %v", refused, st.Status, st.Failures, st.OmittedFailures)
	}
	f.expectEvent("Warning StatusTrimmed The API server refused the status as too large")
}
