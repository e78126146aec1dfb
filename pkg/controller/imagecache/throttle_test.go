package imagecache

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/client-go/tools/cache"
)

// TestFairShareNeverIdlesASlot: with 5 slots, two caches that each hold
// their share (2) and both want more do not refuse each other the fifth:
// nobody else could use it.
func TestFairShareNeverIdlesASlot(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := newThrottle(5, func() time.Time { return now })
	a, b := cache.ObjectName{Namespace: "ns", Name: "a"}, cache.ObjectName{Namespace: "ns", Name: "b"}
	take := func(owner cache.ObjectName, n int) int {
		got := 0
		for i := range n {
			if th.tryAcquire(fmt.Sprintf("%s-%d-%d", owner.Name, th.count(), i), owner) {
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
	if got := take(c, 1); got != 0 || !th.isWaiting(c) {
		t.Fatalf("c took %d slots with none free, or does not wait", got)
	}
	th.release("a-4-0") // a's last Job was not created after all
	if got := take(a, 1); got != 0 {
		t.Errorf("a took a slot over its share while c waits with none")
	}
	if !th.isWaiting(a) {
		t.Error("a, refused, is not waiting")
	}
	th.unwait(c) // c's next pass
	if got := take(c, 1); got != 1 {
		t.Errorf("c took %d slots, want the free one", got)
	}

	// Once a cache stops asking (it synced and wanted nothing), its wants
	// are forgotten; after a minute they lapse anyway.
	th.unwait(a)
	th.unwait(b)
	if th.isWaiting(a) || th.isWaiting(b) {
		t.Error("unwait left a cache waiting")
	}
	now = now.Add(2 * time.Minute)
	if th.count() != 0 {
		t.Errorf("expectations never seen by the informer still hold %d slots after their TTL", th.count())
	}
}
