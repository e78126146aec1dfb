package expectations

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/tools/cache"
)

var (
	t0     = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	cacheA = cache.ObjectName{Namespace: "ns", Name: "a"}
	cacheB = cache.ObjectName{Namespace: "ns", Name: "b"}
)

func TestCreates(t *testing.T) {
	for _, tc := range []struct {
		name string
		// then acts on expectations of ns/j1 (cache a) and ns/j2 (cache b),
		// the clock at t0 + 30s.
		then        func(e *Expectations)
		wantPending int
		wantBy      map[cache.ObjectName]int
		wantJ1      bool
	}{{
		name:        "expected until seen",
		then:        func(*Expectations) {},
		wantPending: 2, wantBy: map[cache.ObjectName]int{cacheA: 1, cacheB: 1}, wantJ1: true,
	}, {
		name:        "a live object of the name, before the create returned, fulfils it",
		then:        func(e *Expectations) { e.ObservedCreate("ns/j1", "other", true) },
		wantPending: 1, wantBy: map[cache.ObjectName]int{cacheB: 1},
	}, {
		name:        "one of the name being deleted does not",
		then:        func(e *Expectations) { e.ObservedCreate("ns/j1", "earlier", false) },
		wantPending: 2, wantBy: map[cache.ObjectName]int{cacheA: 1, cacheB: 1}, wantJ1: true,
	}, {
		name: "once the create returned, only its UID fulfils it",
		then: func(e *Expectations) {
			e.Created("ns/j1", "uid-1")
			e.ObservedCreate("ns/j1", "earlier", true)
		},
		wantPending: 2, wantBy: map[cache.ObjectName]int{cacheA: 1, cacheB: 1}, wantJ1: true,
	}, {
		name: "the create's UID, seen by its name",
		then: func(e *Expectations) {
			e.Created("ns/j1", "uid-1")
			e.ObservedCreate("ns/j1", "uid-1", false)
		},
		wantPending: 1, wantBy: map[cache.ObjectName]int{cacheB: 1},
	}, {
		name: "the create's UID, seen from elsewhere (its pod)",
		then: func(e *Expectations) {
			e.Created("ns/j2", "uid-2")
			e.ObservedCreateOf("uid-2")
		},
		wantPending: 1, wantBy: map[cache.ObjectName]int{cacheA: 1}, wantJ1: true,
	}, {
		name:        "a create that did not happen",
		then:        func(e *Expectations) { e.ForgetCreate("ns/j1") },
		wantPending: 1, wantBy: map[cache.ObjectName]int{cacheB: 1},
	}, {
		name: "the TTL passed",
		then: func(e *Expectations) {
			clk := t0.Add(2 * time.Minute)
			e.now = func() time.Time { return clk }
		},
		wantPending: 0, wantBy: map[cache.ObjectName]int{},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			e := New(time.Minute, func() time.Time { return now })
			if !e.ExpectCreate("ns/j1", cacheA) || !e.ExpectCreate("ns/j2", cacheB) {
				t.Fatal("a first create was already expected")
			}
			if e.ExpectCreate("ns/j1", cacheA) {
				t.Fatal("a second create of the same name was taken")
			}
			now = t0.Add(30 * time.Second)
			tc.then(e)
			n, by := e.PendingCreates()
			if n != tc.wantPending {
				t.Errorf("pending %d, want %d", n, tc.wantPending)
			}
			if diff := cmp.Diff(tc.wantBy, by); diff != "" {
				t.Errorf("per cache (-want +got):\n%s", diff)
			}
			if got := e.ExpectsCreate("ns/j1"); got != tc.wantJ1 {
				t.Errorf("ns/j1 expected: %v, want %v", got, tc.wantJ1)
			}
		})
	}
}

func TestDeletes(t *testing.T) {
	now := t0
	e := New(time.Minute, func() time.Time { return now })
	e.ExpectDelete("u1")
	e.ExpectDelete("u2")
	if !e.ExpectsDelete("u1") || e.ExpectsDelete("u3") {
		t.Fatal("deleting: u1 not expected, or u3 expected")
	}
	e.ObservedDelete("u1")
	if e.ExpectsDelete("u1") {
		t.Error("u1 still expected once seen deleted")
	}
	now = t0.Add(61 * time.Second)
	if e.ExpectsDelete("u2") {
		t.Error("u2 expected past the TTL")
	}
}

func TestWrites(t *testing.T) {
	e := New(time.Minute, time.Now)
	for _, tc := range []struct {
		name                string
		replaced, written   string
		version             string
		wantOutdated, again bool
	}{
		{name: "the informer shows the replaced version", replaced: "5", written: "6", version: "5", wantOutdated: true, again: true},
		{name: "it shows the write", replaced: "5", written: "6", version: "6"},
		{name: "it shows a later one", replaced: "5", written: "6", version: "9"},
		{name: "the write changed nothing", replaced: "5", written: "5", version: "5"},
		{name: "no written version", replaced: "5", written: "", version: "5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.ExpectWrite(cacheA, tc.replaced, tc.written)
			if got := e.Outdated(cacheA, tc.version); got != tc.wantOutdated {
				t.Errorf("outdated: %v, want %v", got, tc.wantOutdated)
			}
			if got := e.Outdated(cacheA, tc.version); got != tc.again {
				t.Errorf("outdated when asked again: %v, want %v", got, tc.again)
			}
			e.ForgetWrites(cacheA)
			if e.Outdated(cacheA, tc.replaced) {
				t.Error("outdated once forgotten")
			}
		})
	}
}
