package imagecache

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// TestFairShareOfSlots: with 4 slots, "hang" takes them all before "web"
// asks. When hang's Jobs end, hang gets only its share (2) while web waits,
// and web gets the other 2; once web no longer waits, hang may use every
// free slot again.
func TestFairShareOfSlots(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlightJobs = 4
	var nodes []*corev1.Node
	for i := range 8 {
		nodes = append(nodes, newNode(fmt.Sprintf("node-%d", i)))
	}
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{
		newImageCache("hang", withImages("hang.invalid/slow")),
		newImageCache("web", withImages("nginx")),
	}, nodes...)
	created := func(name string) int {
		t.Helper()
		writes, _ := f.syncOnly(name, wCreateJob, wDeleteJob, wStatus)
		return len(createdJobs(writes))
	}
	if n := len(createdJobs(must(f.syncStarted("hang", times(wCreateJob, 4))))); n != 4 {
		t.Fatalf("hang created %d Jobs, want all 4 slots", n)
	}
	if n := len(createdJobs(must(f.syncStarted("web")))); n != 0 {
		t.Fatalf("web created %d Jobs with no slot free", n)
	}
	if !f.c.throttle.IsWaiting(cache.ObjectName{Namespace: testNS, Name: "web"}) {
		t.Fatal("web is not waiting for a slot")
	}

	f.completeAll() // hang's first Jobs end, and free their slots
	if n := created("hang"); n != 2 {
		t.Errorf("hang, first to sync, created %d Jobs while web waits; want its share, 2", n)
	}
	if n := created("web"); n != 2 {
		t.Errorf("web created %d Jobs, want the 2 slots hang left", n)
	}
	if n := created("hang"); n != 0 {
		t.Errorf("hang created %d Jobs with every slot taken", n)
	}

	// web finishes its first Jobs, and asks for more: it gets the slots it
	// frees; hang keeps its 2.
	for _, j := range f.jobs() {
		if j.Annotations[puller.AnnotationCache] == "web" && puller.IsActive(&j) {
			f.completeJob(j)
		}
	}
	if n := created("hang"); n != 0 {
		t.Errorf("hang created %d Jobs over its share while web waits", n)
	}
	if n := created("web"); n != 2 {
		t.Errorf("web created %d Jobs, want 2", n)
	}
	// web's last Jobs end and it wants nothing more: hang may take every free slot.
	for round := 0; round < 3; round++ {
		for _, j := range f.jobs() {
			if j.Annotations[puller.AnnotationCache] == "web" && puller.IsActive(&j) {
				f.completeJob(j)
			}
		}
		created("web")
	}
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Fatalf("web is %s (%s), want Succeeded", st.Status, st.Message)
	}
	f.clock.Step(time.Second)
	if n := created("hang"); n != 2 {
		t.Errorf("hang created %d Jobs with 2 slots free and nobody waiting, want 2", n)
	}
}

func must(writes []core.Action, _ time.Duration) []core.Action { return writes }
