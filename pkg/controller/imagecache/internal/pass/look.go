package pass

import (
	"time"
)

// Look is when to look at the cache again.
type Look struct {
	// CheckAt is the earliest time a running Job must be looked at again.
	CheckAt time.Time
}

// LookAt asks the pass to look at the cache again at t (none when zero),
// unless it looks earlier already.
func (l *Look) LookAt(t time.Time) {
	if !t.IsZero() && (l.CheckAt.IsZero() || t.Before(l.CheckAt)) {
		l.CheckAt = t
	}
}
