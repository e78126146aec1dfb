package imagecache

import (
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"kubefledged.io/kube-fledged/pkg/puller"
)

// expectationTTL bounds how long a created Job the informer has not shown yet
// holds a slot, and how long a cache that asked for a slot in vain counts as
// waiting.
const expectationTTL = time.Minute

// throttle keeps the number of active Jobs across the cluster at or below a
// maximum. It counts the active Jobs the informer shows, by UID, plus the
// Jobs this process created (or is creating) that the informer does not show
// yet, by name until the API server gives them a UID. So an event of an
// earlier Job of the same name, deleted late, frees only its own slot. A Job
// whose pod has finished (Succeeded or Failed) frees its slot at once: what
// is left of it is the Job controller's bookkeeping, and the controller
// knows the outcome from the pod (puller.Read), while a slot held until the
// Job is marked Complete would leave the nodes idle for as long.
//
// Slots are shared fairly: while another cache that asked for slots in its
// last pass holds less than its share (the maximum divided by the caches
// holding or asking for slots), a cache that holds its share gets no more,
// so one cache whose pulls hang cannot hold every slot. When no other cache
// wants more, any cache may use every free slot.
type throttle struct {
	mu  sync.Mutex
	max int
	// active maps a Job's UID, and expected a Job's namespace/name, to the
	// cache it belongs to; held counts both per cache.
	active   map[types.UID]cache.ObjectName
	expected map[string]expectation
	held     map[cache.ObjectName]int
	// podDone holds the UIDs of live Jobs whose pod finished: they take no
	// slot, whatever their status says, until they are gone.
	podDone map[types.UID]bool
	// wanting holds the caches that asked for slots in their last pass,
	// and waiting those of them that were refused one; each with when.
	wanting map[cache.ObjectName]time.Time
	waiting map[cache.ObjectName]time.Time
	now     func() time.Time
}

type expectation struct {
	at    time.Time
	owner cache.ObjectName
	// uid is the created Job's, once the create returned it.
	uid types.UID
}

func newThrottle(max int, now func() time.Time) *throttle {
	return &throttle{max: max, active: map[types.UID]cache.ObjectName{}, expected: map[string]expectation{},
		held: map[cache.ObjectName]int{}, podDone: map[types.UID]bool{}, wanting: map[cache.ObjectName]time.Time{},
		waiting: map[cache.ObjectName]time.Time{}, now: now}
}

func jobKey(job *batchv1.Job) string { return job.Namespace + "/" + job.Name }

// ownerOf names the cache a Job of the controller belongs to.
func ownerOf(job *batchv1.Job) cache.ObjectName {
	ns, name := puller.CacheOf(job)
	return cache.ObjectName{Namespace: ns, Name: name}
}

// inFlight is the number of slots taken, after dropping the expectations and
// waits that are too old. Callers hold mu.
func (t *throttle) inFlight() int {
	now := t.now()
	for k, e := range t.expected {
		if now.Sub(e.at) > expectationTTL {
			t.dropExpected(k)
		}
	}
	for _, m := range []map[cache.ObjectName]time.Time{t.wanting, t.waiting} {
		for w, at := range m {
			if now.Sub(at) > expectationTTL {
				delete(m, w)
			}
		}
	}
	return len(t.active) + len(t.expected)
}

func (t *throttle) dropExpected(k string) {
	if e, ok := t.expected[k]; ok {
		delete(t.expected, k)
		t.unhold(e.owner)
	}
}

func (t *throttle) unhold(owner cache.ObjectName) {
	if t.held[owner]--; t.held[owner] <= 0 {
		delete(t.held, owner)
	}
}

// observe records a Job the informer shows, or that it is gone (deleted).
// It returns the caches waiting for a slot when one was freed, to be
// enqueued.
func (t *throttle) observe(job *batchv1.Job, deleted bool) []cache.ObjectName {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen(job, deleted)
	if deleted || !puller.IsActive(job) {
		delete(t.podDone, job.UID)
	}
	if !deleted && puller.IsActive(job) && job.DeletionTimestamp == nil && (job.Spec.Suspend == nil || !*job.Spec.Suspend) &&
		!t.podDone[job.UID] {
		if _, ok := t.active[job.UID]; !ok {
			t.active[job.UID] = ownerOf(job)
			t.held[ownerOf(job)]++
		}
		return nil
	}
	return t.free(job.UID)
}

// podFinished records that the pod of the Job with this UID has finished,
// and frees the Job's slot. It returns the caches waiting for a slot, to be
// enqueued, when it freed one. The record goes when the Job is seen
// complete or gone, or the pod gone (podGone); a pod's event that comes
// before its Job's makes the Job take no slot when seen.
func (t *throttle) podFinished(jobUID types.UID) []cache.ObjectName {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.podDone[jobUID] = true
	for k, e := range t.expected {
		if e.uid == jobUID {
			t.dropExpected(k)
		}
	}
	return t.free(jobUID)
}

// seen drops the expectation that a Job the informer now shows fulfils: the
// one whose create returned this UID, or, before the create returned, the
// one of that name, if the Job is live (a Job of that name being deleted is
// an earlier one). Callers hold mu.
func (t *throttle) seen(job *batchv1.Job, deleted bool) {
	k := jobKey(job)
	e, ok := t.expected[k]
	if !ok {
		return
	}
	if e.uid == job.UID || (e.uid == "" && !deleted && job.DeletionTimestamp == nil) {
		t.dropExpected(k)
	}
}

// created records the UID the API server gave a Job this process created,
// unless the informer already showed it.
func (t *throttle) created(job *batchv1.Job) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.expected[jobKey(job)]; ok && job.UID != "" {
		e.uid = job.UID
		t.expected[jobKey(job)] = e
	}
}

// free gives back an active Job's slot, and returns the caches waiting for
// one. They stay waiting until they ask again (unwait).
func (t *throttle) free(uid types.UID) []cache.ObjectName {
	owner, ok := t.active[uid]
	if !ok {
		return nil
	}
	delete(t.active, uid)
	t.unhold(owner)
	out := make([]cache.ObjectName, 0, len(t.waiting))
	for w := range t.waiting {
		out = append(out, w)
	}
	return out
}

// podGone forgets that the pod of a Job finished, once the pod is deleted.
// Should the Job still run (it makes another pod), it takes a slot at its
// next event.
func (t *throttle) podGone(jobUID types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.podDone, jobUID)
}

// tryAcquire takes a slot for a Job of cache owner about to be created, or
// records the cache as waiting and returns false: when every slot is taken,
// or when owner holds its fair share and another cache wants more.
func (t *throttle) tryAcquire(jobKey string, owner cache.ObjectName) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.expected[jobKey]; ok {
		return true
	}
	now := t.now()
	t.wanting[owner] = now
	if t.inFlight() >= t.max || t.overShare(owner) {
		t.waiting[owner] = now
		return false
	}
	t.expected[jobKey] = expectation{at: now, owner: owner}
	t.held[owner]++
	return true
}

// overShare reports whether owner holds its fair share while another cache
// that wants slots holds less than its own. Callers hold mu.
func (t *throttle) overShare(owner cache.ObjectName) bool {
	competing := len(t.held)
	for w := range t.wanting {
		if t.held[w] == 0 {
			competing++ // wanting, and not among the holders
		}
	}
	share := max(1, t.max/competing)
	if t.held[owner] < share {
		return false
	}
	for w := range t.wanting {
		if w != owner && t.held[w] < share {
			return true
		}
	}
	return false
}

// release gives back a slot whose Job was not created.
func (t *throttle) release(jobKey string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropExpected(jobKey)
}

// unwait forgets what a cache wanted, as it works out the Jobs it wants
// anew: it wants slots again when it asks for one.
func (t *throttle) unwait(owner cache.ObjectName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.wanting, owner)
	delete(t.waiting, owner)
}

// isExpected reports whether this process created the Job (or is creating
// it) and the informer does not show it yet: creating it again would only
// meet AlreadyExists.
func (t *throttle) isExpected(jobKey string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.expected[jobKey]
	return ok && t.now().Sub(e.at) <= expectationTTL
}

// count returns the slots in use.
func (t *throttle) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inFlight()
}

// isWaiting reports whether a cache waits for a slot.
func (t *throttle) isWaiting(key cache.ObjectName) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.waiting[key]
	return ok
}
