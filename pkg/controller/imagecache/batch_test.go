package imagecache

import (
	"testing"
	"time"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// TestBusyCacheWritesOnceAPeriod: with --status-batch-period, a pass that
// settles pulls within the period after the last write holds its write
// (its Jobs keep what it read) and looks again at the period's end, which
// writes what the passes in between settled, in one write; the operation's
// start and its end are written at once.
func TestBusyCacheWritesOnceAPeriod(t *testing.T) {
	cfg := testConfig()
	cfg.StatusBatchPeriod = time.Second
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))},
		newNode("node-a"), newNode("node-b"), newNode("node-c"))
	writes, _ := f.syncStarted("web", times(wCreateJob, 3))
	jobs := createdJobs(writes)
	f.completeJob(*jobs[0])
	f.clock.Step(100 * time.Millisecond)
	// The first pull settled 100 ms after the start was written: held.
	if w, after := f.sync("web"); len(w) != 0 || after != 900*time.Millisecond {
		t.Errorf("within the period: wrote %s, look again after %v; want nothing written, 900ms", describe(w), after)
	}
	f.completeJob(*jobs[1])
	f.clock.Step(900 * time.Millisecond)
	// The period is over: both pulls settled meanwhile go in one write.
	f.sync("web", wStatus)
	if p := f.imageCache("web").Status.Pulls; p.Succeeded != 2 || p.Pending != 1 {
		t.Errorf("pulls %+v, want 2 succeeded, 1 pending", p)
	}
	// The last one ends the operation: written at once.
	f.completeJob(*jobs[2])
	f.clock.Step(10 * time.Millisecond)
	f.sync("web", times(wDeleteJob, 3), wStatus)
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Errorf("%s %q, want Succeeded at once", st.Status, st.Message)
	}
}
