package imagecache

import (
	"testing"
	"time"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// TestBusyCacheWritesOnceAPeriod: with --status-batch-period, a pass within
// the period after the last write that went on with the operation waits,
// reading nothing (the Jobs keep their outcomes), and comes back at the
// period's end, which writes what settled meanwhile in one write; the
// operation's start does not hold the pass after it.
func TestBusyCacheWritesOnceAPeriod(t *testing.T) {
	cfg := testConfig()
	cfg.StatusBatchPeriod = time.Second
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))},
		newNode("node-a"), newNode("node-b"), newNode("node-c"))
	writes, _ := f.syncStarted("web", times(wCreateJob, 3))
	jobs := createdJobs(writes)
	f.completeJob(*jobs[0])
	f.clock.Step(100 * time.Millisecond)
	f.sync("web", wStatus) // the first pull settled: written
	f.completeJob(*jobs[1])
	f.clock.Step(100 * time.Millisecond)
	if w, after := f.sync("web"); len(w) != 0 || after != 900*time.Millisecond {
		t.Errorf("within the period: wrote %s, look again after %v; want nothing written, 900ms", describe(w), after)
	}
	f.completeJob(*jobs[2])
	f.clock.Step(900 * time.Millisecond)
	// The period is over: the two pulls settled meanwhile go in one
	// write, which ends the operation.
	f.sync("web", times(wDeleteJob, 3), wStatus)
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Succeeded != 3 {
		t.Errorf("%s %+v", st.Status, st.Pulls)
	}
	// An end is no progress write: the next pass is not held.
	f.clock.Step(10 * time.Millisecond)
	if _, after := f.sync("web"); after > 0 && after < time.Second {
		t.Errorf("after the end: look again after %v, want no batch period's wait", after)
	}
}
