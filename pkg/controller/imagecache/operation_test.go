package imagecache

import (
	"testing"
	"time"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// TestRefreshAndPurgeAskedTogether: with both annotations set, the purge
// runs, the refresh annotation goes at its start with an event saying so,
// and no refresh starts in its middle or after it: the purge is not
// pre-empted, and nothing alternates.
func TestRefreshAndPurgeAskedTogether(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))},
		newNode("node-a", withRuntime("containerd://2.0.0")))
	f.syncStarted("web", wCreateJob)
	f.completeAll()
	f.sync("web", wDeleteJob, wStatus)
	f.edit("web", func(ic *v1alpha2.ImageCache) {
		ic.Annotations = map[string]string{v1alpha2.AnnotationRefresh: "", v1alpha2.AnnotationPurge: ""}
	})
	f.clock.Step(2 * time.Second)
	f.events()
	f.sync("web", wAnnotation, wStatus)
	ic := f.imageCache("web")
	if ic.Status.Reason != v1alpha2.ImageCacheReasonPurge {
		t.Fatalf("started %s, want the purge", ic.Status.Reason)
	}
	if _, ok := ic.Annotations[v1alpha2.AnnotationRefresh]; ok {
		t.Error("the refresh annotation stays while the purge runs")
	}
	f.expectEvent("Normal RefreshIgnored")
	f.clock.Step(2 * time.Second)
	if writes, _ := f.sync("web", wCreateJob); len(createdJobs(writes)) != 1 {
		t.Fatalf("the purge's delete Job: %s", describe(writes))
	}
	f.completeAll()
	f.sync("web", wDeleteJob, wAnnotation, wStatus)
	for range 3 {
		f.clock.Step(2 * time.Second)
		if w, _ := f.sync("web"); len(w) != 0 {
			t.Fatalf("after the purge: %s", describe(w))
		}
	}
	if st := f.imageCache("web").Status; st.Reason != v1alpha2.ImageCacheReasonPurge || st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Errorf("status %s %s", st.Reason, st.Status)
	}
}
