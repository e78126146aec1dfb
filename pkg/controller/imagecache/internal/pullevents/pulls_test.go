package pullevents

import (
	"testing"
	"time"
)

func TestParsePulled(t *testing.T) {
	for _, tc := range []struct {
		msg   string
		took  time.Duration
		bytes int64
		ok    bool
	}{
		{`Successfully pulled image "nginx:1.27" in 2.213s (2.213s including waiting). Image size: 72099501 bytes.`, 2213 * time.Millisecond, 72099501, true},
		{`Successfully pulled image "ghcr.io/org/big:v1" in 1m2.5s (3m1s including waiting). Image size: 21474836480 bytes.`, 62500 * time.Millisecond, 21474836480, true},
		{`Successfully pulled image "nginx:1.27" in 850ms (850ms including waiting)`, 850 * time.Millisecond, 0, true},
		{`Container image "nginx:1.27" already present on machine`, 0, 0, false},
		{`Container image "nginx:1.27" already present on machine and can be accessed by the pod`, 0, 0, false},
		{`Successfully pulled image "nginx" in forever`, 0, 0, false},
	} {
		p, ok := parsePulled(tc.msg)
		if ok != tc.ok || p.Took != tc.took || p.Bytes != tc.bytes {
			t.Errorf("%q: %v %v %d, want %v %v %d", tc.msg, ok, p.Took, p.Bytes, tc.ok, tc.took, tc.bytes)
		}
	}
}
