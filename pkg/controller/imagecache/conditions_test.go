package imagecache

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// conditions renders the kstatus-read conditions of a cache as
// "Ready=True/Cached Reconciling=False/Complete Stalled=False/Cached", and
// checks that each carries the cache's generation.
func (f *fixture) conditions(name string) string {
	f.t.Helper()
	ic := f.imageCache(name)
	var out []string
	for _, kind := range []string{v1alpha2.ConditionReady, v1alpha2.ConditionReconciling, v1alpha2.ConditionStalled} {
		c := meta.FindStatusCondition(ic.Status.Conditions, kind)
		if c == nil {
			out = append(out, kind+"=none")
			continue
		}
		if c.ObservedGeneration != ic.Generation {
			f.t.Errorf("%s: observedGeneration %d, generation %d", kind, c.ObservedGeneration, ic.Generation)
		}
		out = append(out, fmt.Sprintf("%s=%s/%s", kind, c.Status, c.Reason))
	}
	return strings.Join(out, " ")
}

// TestConditionsThroughACachesLife: Ready, Reconciling and Stalled at each
// stage. Ready stays True through a refresh and a node's warming of a cache
// that was Ready for its generation, not through an update; a failed or
// purged cache is Stalled, and the next operation clears it.
func TestConditionsThroughACachesLife(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a", withRuntime("containerd://2.0.0")))
	expect := func(stage, want string) {
		t.Helper()
		if got := f.conditions("web"); got != want {
			t.Errorf("%s:\n got %s\nwant %s", stage, got, want)
		}
	}
	f.sync("web", wStatus)
	expect("created", "Ready=False/Pulling Reconciling=True/ImageCacheCreate Stalled=False/ImageCacheCreate")
	f.sync("web", wCreateJob)
	f.completeAll()
	f.sync("web", wDeleteJob, wStatus)
	expect("succeeded", "Ready=True/Cached Reconciling=False/Complete Stalled=False/Cached")
	readySince := meta.FindStatusCondition(f.imageCache("web").Status.Conditions, v1alpha2.ConditionReady).LastTransitionTime

	f.annotate("web", v1alpha2.AnnotationRefresh)
	f.clock.Step(2 * time.Second)
	f.sync("web", wAnnotation, wStatus) // the refresh starts, and takes its annotation
	expect("refreshing", "Ready=True/Cached Reconciling=True/ImageCacheRefresh Stalled=False/ImageCacheRefresh")
	f.sync("web", wCreateJob)
	f.completeAll()
	f.sync("web", wDeleteJob, wAnnotation, wStatus)
	expect("refreshed", "Ready=True/Cached Reconciling=False/Complete Stalled=False/Cached")

	// A node joins: it is warmed, and the cache stays Ready.
	f.clock.Step(2 * time.Second)
	n := newNode("node-b", withRuntime("containerd://2.0.0"))
	if _, err := f.kube.CoreV1().Nodes().Create(f.ctx, n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.catchUp()
	f.clearActions()
	f.sync("web", wCreateJob, wStatus)
	expect("a node joining", "Ready=True/Cached Reconciling=True/ImageCacheRefresh Stalled=False/ImageCacheRefresh")
	f.completeAll()
	f.sync("web", wDeleteJob, wStatus)
	expect("the node warmed", "Ready=True/Cached Reconciling=False/Complete Stalled=False/Cached")
	if got := meta.FindStatusCondition(f.imageCache("web").Status.Conditions, v1alpha2.ConditionReady).LastTransitionTime; !got.Equal(&readySince) {
		t.Errorf("Ready's lastTransitionTime moved from %v to %v though it stayed True", readySince, got)
	}

	// An update that adds an image no node can pull: not Ready until done,
	// then Stalled.
	f.clock.Step(2 * time.Second)
	f.edit("web", func(ic *v1alpha2.ImageCache) {
		ic.Spec.CacheSpec[0].Images = append(ic.Spec.CacheSpec[0].Images, "redis", strings.Repeat("a", 256))
		ic.Generation++
	})
	f.sync("web", wStatus)
	expect("updating", "Ready=False/Pulling Reconciling=True/ImageCacheUpdate Stalled=False/ImageCacheUpdate")
	f.sync("web", times(wCreateJob, 2))
	f.completeAll()
	f.sync("web", times(wDeleteJob, 2), wStatus)
	expect("failed", "Ready=False/PullsFailed Reconciling=False/Complete Stalled=True/PullsFailed")
	st := f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusFailed {
		t.Fatalf("status %s %q", st.Status, st.Message)
	}
	if c := meta.FindStatusCondition(st.Conditions, v1alpha2.ConditionStalled); !strings.HasPrefix(c.Message, st.Message+"; ") ||
		!strings.Contains(c.Message, "refreshed") {
		t.Errorf("Stalled's message %q does not give the status's and say what to do", c.Message)
	}

	// The purge: removing, then purged and Stalled.
	f.annotate("web", v1alpha2.AnnotationPurge)
	f.clock.Step(2 * time.Second)
	f.sync("web", wStatus)
	expect("purging", "Ready=False/Removing Reconciling=True/ImageCachePurge Stalled=False/ImageCachePurge")
	f.syncOnly("web", wCreateJob, wStatus)
	f.completeAll()
	f.syncOnly("web", wDeleteJob, wAnnotation, wStatus)
	expect("purged", "Ready=False/Purged Reconciling=False/Complete Stalled=True/Purged")
}
