package throttle

import (
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"kubefledged.io/kube-fledged/pkg/controller/expectations"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// ExpectationTTL bounds how long a created Job the informer has not shown yet
// holds a slot (and a deleted one is taken as going), and how long a cache
// that asked for a slot in vain counts as waiting.
const ExpectationTTL = time.Minute

// ThrottledRetry is how soon a cache waiting for a free Job slot looks
// again, should no slot-freeing event wake it first.
const ThrottledRetry = 5 * time.Second

// Throttle keeps the number of active Jobs across the cluster at or below a
// maximum. It counts the active Jobs the informer shows, by UID, plus the
// Jobs this process created (or is creating) that the informer does not show
// yet: those the expectations hold, by name until the API server gives them
// a UID. So an event of an earlier Job of the same name, deleted late, frees
// only its own slot. A Job whose pod has finished (Succeeded or Failed)
// frees its slot at once: what is left of it is the Job controller's
// bookkeeping, and the controller knows the outcome from the pod
// (puller.Read), while a slot held until the Job is marked Complete would
// leave the nodes idle for as long.
//
// Slots are shared fairly: while another cache that asked for slots in its
// last pass holds less than its share (the maximum divided by the caches
// holding or asking for slots), a cache that holds its share gets no more,
// so one cache whose pulls hang cannot hold every slot. When no other cache
// wants more, any cache may use every free slot.
type Throttle struct {
	mu  sync.Mutex
	max int
	// exp holds the creates this process expects.
	exp *expectations.Expectations
	// active maps the UID of an active Job the informer shows to the cache
	// it belongs to; activeBy counts them per cache.
	active   map[types.UID]cache.ObjectName
	activeBy map[cache.ObjectName]int
	// podDone holds the UIDs of live Jobs whose pod finished: they take no
	// slot, whatever their status says, until they are gone.
	podDone map[types.UID]bool
	// wanting holds the caches that asked for slots in their last pass,
	// and waiting those of them that were refused one; each with when.
	wanting map[cache.ObjectName]time.Time
	waiting map[cache.ObjectName]time.Time
	now     func() time.Time
}

func New(max int, exp *expectations.Expectations, now func() time.Time) *Throttle {
	return &Throttle{max: max, exp: exp, active: map[types.UID]cache.ObjectName{}, activeBy: map[cache.ObjectName]int{},
		podDone: map[types.UID]bool{}, wanting: map[cache.ObjectName]time.Time{},
		waiting: map[cache.ObjectName]time.Time{}, now: now}
}

func JobKey(job *batchv1.Job) string { return job.Namespace + "/" + job.Name }

// CacheOf names the cache a Job of the controller was made for.
func CacheOf(job *batchv1.Job) cache.ObjectName {
	ns, name := puller.CacheOf(job)
	return cache.ObjectName{Namespace: ns, Name: name}
}

// inFlight is the number of slots taken, after dropping the expectations and
// waits that are too old, and the creates expected per cache. Callers hold
// mu.
func (t *Throttle) inFlight() (int, map[cache.ObjectName]int) {
	now := t.now()
	for _, m := range []map[cache.ObjectName]time.Time{t.wanting, t.waiting} {
		for w, at := range m {
			if now.Sub(at) > ExpectationTTL {
				delete(m, w)
			}
		}
	}
	creating, by := t.exp.PendingCreates()
	return len(t.active) + creating, by
}

// Observe records a Job the informer shows, or that it is gone (deleted).
// It returns the caches waiting for a slot when one was freed, to be
// enqueued.
func (t *Throttle) Observe(job *batchv1.Job, deleted bool) []cache.ObjectName {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.exp.ObservedCreate(JobKey(job), job.UID, !deleted && job.DeletionTimestamp == nil)
	if deleted || !puller.IsActive(job) {
		delete(t.podDone, job.UID)
	}
	if !deleted && puller.IsActive(job) && job.DeletionTimestamp == nil && (job.Spec.Suspend == nil || !*job.Spec.Suspend) &&
		!t.podDone[job.UID] {
		if _, ok := t.active[job.UID]; !ok {
			t.active[job.UID] = CacheOf(job)
			t.activeBy[CacheOf(job)]++
		}
		return nil
	}
	return t.free(job.UID)
}

// PodFinished records that the pod of the Job with this UID has finished,
// and frees the Job's slot. It returns the caches waiting for a slot, to be
// enqueued, when it freed one. The record goes when the Job is seen
// complete or gone, or the pod gone (podGone); a pod's event that comes
// before its Job's makes the Job take no slot when seen.
func (t *Throttle) PodFinished(jobUID types.UID) []cache.ObjectName {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.podDone[jobUID] = true
	t.exp.ObservedCreateOf(jobUID)
	return t.free(jobUID)
}

// Created records the UID the API server gave a Job this process created,
// unless the informer already showed it.
func (t *Throttle) Created(job *batchv1.Job) { t.exp.Created(JobKey(job), job.UID) }

// free gives back an active Job's slot, and returns the caches waiting for
// one. They stay waiting until they ask again (unwait). Callers hold mu.
func (t *Throttle) free(uid types.UID) []cache.ObjectName {
	owner, ok := t.active[uid]
	if !ok {
		return nil
	}
	delete(t.active, uid)
	if t.activeBy[owner]--; t.activeBy[owner] <= 0 {
		delete(t.activeBy, owner)
	}
	out := make([]cache.ObjectName, 0, len(t.waiting))
	for w := range t.waiting {
		out = append(out, w)
	}
	return out
}

// PodGone forgets that the pod of a Job finished, once the pod is deleted.
// Should the Job still run (it makes another pod), it takes a slot at its
// next event.
func (t *Throttle) PodGone(jobUID types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.podDone, jobUID)
}

// TryAcquire takes a slot for a Job of cache owner about to be created (an
// expected create), or records the cache as waiting and returns false: when
// every slot is taken, or when owner holds its fair share and another cache
// wants more.
func (t *Throttle) TryAcquire(jobKey string, owner cache.ObjectName) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.exp.ExpectsCreate(jobKey) {
		return true
	}
	now := t.now()
	t.wanting[owner] = now
	if n, creating := t.inFlight(); n >= t.max || t.overShare(owner, creating) {
		t.waiting[owner] = now
		return false
	}
	t.exp.ExpectCreate(jobKey, owner)
	return true
}

// overShare reports whether owner holds its fair share while another cache
// that wants slots holds less than its own. creating counts the expected
// creates per cache. Callers hold mu.
func (t *Throttle) overShare(owner cache.ObjectName, creating map[cache.ObjectName]int) bool {
	held := func(c cache.ObjectName) int { return t.activeBy[c] + creating[c] }
	competing := len(t.activeBy)
	for c := range creating {
		if t.activeBy[c] == 0 {
			competing++ // creating, with no active Job
		}
	}
	for w := range t.wanting {
		if held(w) == 0 {
			competing++ // wanting, and not among the holders
		}
	}
	share := max(1, t.max/competing)
	if held(owner) < share {
		return false
	}
	for w := range t.wanting {
		if w != owner && held(w) < share {
			return true
		}
	}
	return false
}

// Release gives back a slot whose Job was not created.
func (t *Throttle) Release(jobKey string) { t.exp.ForgetCreate(jobKey) }

// Unwait forgets what a cache wanted, as it works out the Jobs it wants
// anew: it wants slots again when it asks for one.
func (t *Throttle) Unwait(owner cache.ObjectName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.wanting, owner)
	delete(t.waiting, owner)
}

// Count returns the slots in use.
func (t *Throttle) Count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, _ := t.inFlight()
	return n
}

// Slots is one cache's part of the Job slots (--max-in-flight-jobs): how
// many its Jobs take, and whether it waits for one.
type Slots struct {
	InUse   int
	Waiting bool
}

// ByCache returns the slots of each cache that takes or waits for one.
func (t *Throttle) ByCache() map[cache.ObjectName]Slots {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, creating := t.inFlight()
	out := map[cache.ObjectName]Slots{}
	for c, n := range t.activeBy {
		out[c] = Slots{InUse: n}
	}
	for c, n := range creating {
		s := out[c]
		s.InUse += n
		out[c] = s
	}
	for c := range t.waiting {
		s := out[c]
		s.Waiting = true
		out[c] = s
	}
	return out
}

// IsWaiting reports whether a cache waits for a slot.
func (t *Throttle) IsWaiting(key cache.ObjectName) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.waiting[key]
	return ok
}
