// Package expectations remembers the writes this process made that its
// informers do not show yet, so that a sync working from an informer's cache
// neither repeats a write nor acts on an object older than its own last
// write. It is the controller's one record of them, in the spirit of the Job
// controller's expectations:
//
//   - creates, by namespace/name, until the informer shows the object (with
//     the UID the create returned, or, before it returned, any live object
//     of that name), or a TTL passes: a create that is never seen (its watch
//     event lost, the object deleted at once) must not be expected for ever;
//   - deletes, by UID, until the informer shows the object deleted or being
//     deleted, or the TTL passes;
//   - status writes, by the key of the object written: the resourceVersion
//     the write replaced, until the informer shows another one.
package expectations

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// Expectations is safe for use by several workers.
type Expectations struct {
	mu  sync.Mutex
	ttl time.Duration
	now func() time.Time

	creates map[string]create
	// createsBy counts the creates expected per owner.
	createsBy map[cache.ObjectName]int
	deletes   map[types.UID]time.Time
	writes    map[cache.ObjectName]string
}

type create struct {
	at    time.Time
	owner cache.ObjectName
	// uid is the created object's, once the create returned it.
	uid types.UID
}

// New returns expectations that lapse after ttl, on the clock now.
func New(ttl time.Duration, now func() time.Time) *Expectations {
	return &Expectations{ttl: ttl, now: now, creates: map[string]create{}, createsBy: map[cache.ObjectName]int{},
		deletes: map[types.UID]time.Time{}, writes: map[cache.ObjectName]string{}}
}

// ExpectCreate records that the object key (namespace/name) of owner is
// about to be created. It returns false, and records nothing, when that
// create is already expected.
func (e *Expectations) ExpectCreate(key string, owner cache.ObjectName) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.creates[key]; ok {
		return false
	}
	e.creates[key] = create{at: e.now(), owner: owner}
	e.createsBy[owner]++
	return true
}

// Created records the UID the API server gave an expected create.
func (e *Expectations) Created(key string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.creates[key]; ok && uid != "" {
		c.uid = uid
		e.creates[key] = c
	}
}

// ObservedCreate is told of an object the informer shows (live says it is
// not deleted or being deleted), and drops the create it fulfils: the one
// whose create returned this UID or, before the create returned, the one of
// that name if the object is live (one of that name being deleted is an
// earlier object).
func (e *Expectations) ObservedCreate(key string, uid types.UID, live bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.creates[key]
	if ok && (c.uid == uid || (c.uid == "" && live)) {
		e.dropCreate(key)
	}
}

// ObservedCreateOf drops the create that returned this UID, whatever its
// name: something other than the object's own event showed it exists.
func (e *Expectations) ObservedCreateOf(uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, c := range e.creates {
		if c.uid == uid {
			e.dropCreate(k)
		}
	}
}

// ForgetCreate drops an expected create that did not happen.
func (e *Expectations) ForgetCreate(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dropCreate(key)
}

// ExpectsCreate says whether the create of key is expected and younger than
// the TTL: creating it again would only meet AlreadyExists.
func (e *Expectations) ExpectsCreate(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.creates[key]
	return ok && e.now().Sub(c.at) <= e.ttl
}

// PendingCreates drops the creates older than the TTL, and returns how many
// are expected, in all and per owner. The map is the caller's until its next
// call; it must not change it.
func (e *Expectations) PendingCreates() (int, map[cache.ObjectName]int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	for k, c := range e.creates {
		if now.Sub(c.at) > e.ttl {
			e.dropCreate(k)
		}
	}
	return len(e.creates), e.createsBy
}

func (e *Expectations) dropCreate(key string) {
	c, ok := e.creates[key]
	if !ok {
		return
	}
	delete(e.creates, key)
	if e.createsBy[c.owner]--; e.createsBy[c.owner] <= 0 {
		delete(e.createsBy, c.owner)
	}
}

// ExpectDelete records that this process deleted the object with uid.
func (e *Expectations) ExpectDelete(uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.deletes[uid] = e.now()
}

// ObservedDelete is told that the informer shows the object deleted, or
// being deleted.
func (e *Expectations) ObservedDelete(uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.deletes, uid)
}

// ExpectsDelete says whether this process deleted the object less than the
// TTL ago, though the informer does not show it yet.
func (e *Expectations) ExpectsDelete(uid types.UID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	at, ok := e.deletes[uid]
	if ok && e.now().Sub(at) > e.ttl {
		delete(e.deletes, uid)
		return false
	}
	return ok
}

// ExpectWrite records that a write of the object key replaced the version
// replaced, when it did (written is the version it made).
func (e *Expectations) ExpectWrite(key cache.ObjectName, replaced, written string) {
	if written == "" || written == replaced {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.writes[key] = replaced
}

// Outdated says whether the informer's version of key is one that this
// process's last write replaced: a sync would work from a status older than
// its own last write. Once the informer shows another version, the
// expectation is dropped.
func (e *Expectations) Outdated(key cache.ObjectName, version string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	replaced, ok := e.writes[key]
	if !ok {
		return false
	}
	if replaced == version {
		return true
	}
	delete(e.writes, key)
	return false
}

// ForgetWrites drops what is expected of key (the object is gone).
func (e *Expectations) ForgetWrites(key cache.ObjectName) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.writes, key)
}
