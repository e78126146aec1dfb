package throttle

import (
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/client-go/tools/cache"

	"kubefledged.io/kube-fledged/pkg/controller/expectations"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
)

// TestFairShareNeverIdlesASlot: with 5 slots, two caches that each hold
// their share (2) and both want more do not refuse each other the fifth:
// nobody else could use it.
func TestFairShareNeverIdlesASlot(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := New(5, expectations.New(ExpectationTTL, func() time.Time { return now }), func() time.Time { return now })
	a, b := cache.ObjectName{Namespace: "ns", Name: "a"}, cache.ObjectName{Namespace: "ns", Name: "b"}
	take := func(owner cache.ObjectName, n int) int {
		got := 0
		for i := range n {
			if th.TryAcquire(fmt.Sprintf("%s-%d-%d", owner.Name, th.Count(), i), owner) {
				got++
			}
		}
		return got
	}
	if got := take(a, 2); got != 2 {
		t.Fatalf("a took %d of 2", got)
	}
	if got := take(b, 2); got != 2 {
		t.Fatalf("b took %d of 2", got)
	}
	if got := take(a, 1); got != 1 {
		t.Errorf("a took %d of the last slot; b holds its share, so a may have it", got)
	}
	if got := take(b, 1); got != 0 {
		t.Errorf("b took %d slots with none free", got)
	}

	// A third cache asks while every slot is taken; when one frees, the
	// share is 1 each, and c is the one owed.
	c := cache.ObjectName{Namespace: "ns", Name: "c"}
	if got := take(c, 1); got != 0 || !th.IsWaiting(c) {
		t.Fatalf("c took %d slots with none free, or does not wait", got)
	}
	th.Release("a-4-0") // a's last Job was not created after all
	if got := take(a, 1); got != 0 {
		t.Errorf("a took a slot over its share while c waits with none")
	}
	if !th.IsWaiting(a) {
		t.Error("a, refused, is not waiting")
	}
	th.Unwait(c) // c's next pass
	if got := take(c, 1); got != 1 {
		t.Errorf("c took %d slots, want the free one", got)
	}

	// Once a cache stops asking (it synced and wanted nothing), its wants
	// are forgotten; after a minute they lapse anyway.
	th.Unwait(a)
	th.Unwait(b)
	if th.IsWaiting(a) || th.IsWaiting(b) {
		t.Error("unwait left a cache waiting")
	}
	now = now.Add(2 * time.Minute)
	if th.Count() != 0 {
		t.Errorf("expectations never seen by the informer still hold %d slots after their TTL", th.Count())
	}
}

// TestThrottleKeysJobsByUID: a late delete event of an earlier Job of the
// same name frees neither the slot of the Job created in its place, before
// nor after the informer shows the new one.
func TestThrottleKeysJobsByUID(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := New(10, expectations.New(ExpectationTTL, func() time.Time { return now }), func() time.Time { return now })
	owner := cache.ObjectName{Namespace: "ns", Name: "a"}
	old, repl := fledgedtest.NewJob("ns", "pull-a-node-1", "uid-old", "a"), fledgedtest.NewJob("ns", "pull-a-node-1", "uid-new", "a")

	// The earlier Job runs and is seen; then it is deleted, but the
	// informer has not said so yet.
	th.Observe(old, false)
	if got := th.Count(); got != 1 {
		t.Fatalf("slots after the first Job: %d, want 1", got)
	}
	// Its replacement, same name, is created and acknowledged by the
	// API server, not yet shown by the informer.
	if !th.TryAcquire(JobKey(repl), owner) {
		t.Fatal("no slot for the replacement")
	}
	th.Created(repl)
	if got := th.Count(); got != 2 {
		t.Fatalf("slots with the old Job and its created replacement: %d, want 2", got)
	}
	// The late delete event of the old Job frees only its own slot.
	th.Observe(old, true)
	if got := th.Count(); got != 1 {
		t.Fatalf("slots after the old Job's delete event: %d, want 1 (the replacement's)", got)
	}
	if !th.exp.ExpectsCreate(JobKey(repl)) {
		t.Error("the old Job's delete event dropped the replacement's expectation")
	}
	// The informer shows the replacement: still one slot, now active.
	th.Observe(repl, false)
	if got := th.Count(); got != 1 || th.exp.ExpectsCreate(JobKey(repl)) {
		t.Fatalf("after the replacement is seen: %d slots (want 1), expected %v (want false)", got, th.exp.ExpectsCreate(JobKey(repl)))
	}
	// A second late event of the old Job, once the new one is active,
	// frees nothing either.
	th.Observe(old, true)
	if got := th.Count(); got != 1 {
		t.Fatalf("a repeated delete event of the old Job freed the replacement's slot: %d slots, want 1", got)
	}
	th.Observe(repl, true)
	if got := th.Count(); got != 0 {
		t.Fatalf("after the replacement is deleted: %d slots, want 0", got)
	}
}

// TestThrottleCreateInFlight: before the create of a Job returns, a delete
// event of an earlier Job of that name does not drop its expectation, and
// the live Job seen by the informer before the create returned fulfils it.
func TestThrottleCreateInFlight(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := New(10, expectations.New(ExpectationTTL, func() time.Time { return now }), func() time.Time { return now })
	owner := cache.ObjectName{Namespace: "ns", Name: "a"}
	mk := func(uid string, opts ...fledgedtest.JobOption) *batchv1.Job {
		return fledgedtest.NewJob("ns", "pull-a-node-1", uid, "a", opts...)
	}
	if !th.TryAcquire("ns/pull-a-node-1", owner) {
		t.Fatal("no slot")
	}
	th.Observe(mk("uid-old", fledgedtest.Deleting(now)), false) // the earlier Job, being deleted
	th.Observe(mk("uid-old"), true)                             // and gone
	if got := th.Count(); got != 1 || !th.exp.ExpectsCreate("ns/pull-a-node-1") {
		t.Fatalf("an earlier Job's events dropped the create in flight: %d slots, want 1", got)
	}
	th.Observe(mk("uid-new"), false) // seen before the create returns
	th.Created(mk("uid-new"))
	if got := th.Count(); got != 1 || th.exp.ExpectsCreate("ns/pull-a-node-1") {
		t.Fatalf("the new Job counted %d times, want once, as active", got)
	}
}

// TestThrottleFreesTheSlotWhenThePodFinishes: a Job whose pod finished
// takes no slot, though the Job controller has not marked it Complete yet,
// whichever of the pod's and the Job's events comes first; once its pod is
// gone, a Job still running takes its slot again.
func TestThrottleFreesTheSlotWhenThePodFinishes(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := New(2, expectations.New(ExpectationTTL, func() time.Time { return now }), func() time.Time { return now })
	a, b := cache.ObjectName{Namespace: "ns", Name: "a"}, cache.ObjectName{Namespace: "ns", Name: "b"}
	j1, j2 := fledgedtest.NewJob("ns", "pull-1", "uid-1", "a"), fledgedtest.NewJob("ns", "pull-2", "uid-2", "a")
	for _, j := range []*batchv1.Job{j1, j2} {
		if !th.TryAcquire(JobKey(j), a) {
			t.Fatalf("no slot for %s", j.Name)
		}
		th.Created(j)
	}
	th.Observe(j1, false)
	if th.TryAcquire("ns/pull-3", b) || !th.IsWaiting(b) {
		t.Fatal("a third Job took a slot of two, or its cache does not wait")
	}
	// j1's pod finishes: its slot is free, and the waiting cache is told.
	if waiting := th.PodFinished(j1.UID); len(waiting) != 1 || waiting[0] != b {
		t.Errorf("podFinished returned %v, want [%v]", waiting, b)
	}
	if got := th.Count(); got != 1 {
		t.Errorf("slots after j1's pod finished: %d, want 1 (j2's)", got)
	}
	// A later event of j1, still not Complete, does not take it back.
	th.Observe(j1, false)
	if got := th.Count(); got != 1 {
		t.Errorf("slots after j1's next event: %d, want 1", got)
	}
	// j2's pod finishes before the informer shows j2: once shown, it takes
	// no slot either.
	th.PodFinished(j2.UID)
	th.Observe(j2, false)
	if got := th.Count(); got != 0 {
		t.Errorf("slots after j2's pod finished and j2 was seen: %d, want 0", got)
	}
	// j2's pod is deleted while j2 runs on (it makes another pod): j2
	// takes its slot again at its next event.
	th.PodGone(j2.UID)
	th.Observe(j2, false)
	if got := th.Count(); got != 1 {
		t.Errorf("slots after j2's pod was gone and j2 seen running: %d, want 1", got)
	}
	// Complete, and gone: nothing is left of either.
	th.Observe(j1, true)
	th.Observe(j2, true)
	if got := th.Count(); got != 0 || len(th.podDone) != 0 {
		t.Errorf("after both Jobs are gone: %d slots, %d pods recorded done; want none", got, len(th.podDone))
	}
}

// TestSlotsByCache: each cache's slots in use (its creates the informer
// does not show yet among them), and whether it waits for one.
func TestSlotsByCache(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := New(3, expectations.New(ExpectationTTL, func() time.Time { return now }), func() time.Time { return now })
	a, b := cache.ObjectName{Namespace: "ns", Name: "a"}, cache.ObjectName{Namespace: "ns", Name: "b"}
	for i := range 3 {
		if !th.TryAcquire(fmt.Sprintf("ns/a-%d", i), a) {
			t.Fatalf("a's slot %d refused", i)
		}
	}
	if th.TryAcquire("ns/b-0", b) {
		t.Fatal("b took a slot with none free")
	}
	want := map[cache.ObjectName]Slots{a: {InUse: 3}, b: {Waiting: true}}
	if got := th.ByCache(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("slots %v, want %v", got, want)
	}
}
