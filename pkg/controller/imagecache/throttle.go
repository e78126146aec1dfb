package imagecache

import (
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/client-go/tools/cache"

	"kubefledged.io/kube-fledged/pkg/puller"
)

// expectationTTL bounds how long a created Job the informer has not shown yet
// holds a slot.
const expectationTTL = time.Minute

// throttle keeps the number of active pull Jobs across the cluster at or
// below a maximum. It counts the active Jobs the informer shows, plus the Jobs
// this process created that the informer does not show yet.
type throttle struct {
	mu       sync.Mutex
	max      int
	active   map[string]bool
	expected map[string]time.Time
	waiting  map[cache.ObjectName]bool
	now      func() time.Time
}

func newThrottle(max int, now func() time.Time) *throttle {
	return &throttle{max: max, active: map[string]bool{}, expected: map[string]time.Time{},
		waiting: map[cache.ObjectName]bool{}, now: now}
}

func jobKey(job *batchv1.Job) string { return job.Namespace + "/" + job.Name }

// inFlight is the number of slots taken. Callers hold mu.
func (t *throttle) inFlight() int {
	now := t.now()
	for k, at := range t.expected {
		if now.Sub(at) > expectationTTL {
			delete(t.expected, k)
		}
	}
	return len(t.active) + len(t.expected)
}

// observe records a Job the informer shows. It returns the caches waiting for
// a slot when one was freed, to be enqueued.
func (t *throttle) observe(job *batchv1.Job) []cache.ObjectName {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := jobKey(job)
	delete(t.expected, k)
	if puller.IsActive(job) && job.DeletionTimestamp == nil && (job.Spec.Suspend == nil || !*job.Spec.Suspend) {
		t.active[k] = true
		return nil
	}
	return t.free(k)
}

// forget records that a Job is gone.
func (t *throttle) forget(key string) []cache.ObjectName {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.expected, key)
	return t.free(key)
}

func (t *throttle) free(k string) []cache.ObjectName {
	if !t.active[k] {
		return nil
	}
	delete(t.active, k)
	var out []cache.ObjectName
	for w := range t.waiting {
		out = append(out, w)
	}
	clear(t.waiting)
	return out
}

// tryAcquire takes a slot for a Job about to be created, or records the cache
// as waiting and returns false.
func (t *throttle) tryAcquire(jobKey string, waiter cache.ObjectName) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.active[jobKey] {
		return true
	}
	if _, ok := t.expected[jobKey]; ok {
		return true
	}
	if t.inFlight() >= t.max {
		t.waiting[waiter] = true
		return false
	}
	t.expected[jobKey] = t.now()
	return true
}

// release gives back a slot whose Job was not created.
func (t *throttle) release(jobKey string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.expected, jobKey)
}

// isExpected reports whether this process created the Job (or is creating
// it) and the informer does not show it yet: creating it again would only
// meet AlreadyExists.
func (t *throttle) isExpected(jobKey string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.expected[jobKey]
	return ok && t.now().Sub(at) <= expectationTTL
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
	return t.waiting[key]
}
