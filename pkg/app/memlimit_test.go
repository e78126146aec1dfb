package app

import (
	"math"
	"os"
	"runtime/debug"
	"testing"
)

func TestSetMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, tc := range []struct {
		name, limit, gomemlimit string
		want                    int64
	}{
		{name: "from the container's limit", limit: "268435456", want: 241591910},
		{name: "no limit", limit: "", want: 0},
		{name: "not a number", limit: "256Mi", want: 0},
		{name: "GOMEMLIMIT wins", limit: "268435456", gomemlimit: "100MiB", want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			t.Setenv(MemoryLimitEnv, tc.limit)
			if tc.gomemlimit != "" {
				t.Setenv("GOMEMLIMIT", tc.gomemlimit)
			}
			if got := setMemoryLimit(); got != tc.want {
				t.Errorf("setMemoryLimit() = %d, want %d", got, tc.want)
			}
			want := tc.want
			if want == 0 {
				want = math.MaxInt64
			}
			if got := debug.SetMemoryLimit(-1); got != want {
				t.Errorf("runtime limit %d, want %d", got, want)
			}
		})
	}
}

func TestSetGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	if got := setGCPercent(); got != 0 {
		t.Errorf("with GOGC set, setGCPercent() = %d, want 0 (left to GOGC)", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set, the target became %d", got)
	}
	os.Unsetenv("GOGC")
	if got := setGCPercent(); got != defaultGCPercent {
		t.Errorf("setGCPercent() = %d, want %d", got, defaultGCPercent)
	}
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("the collector's target is %d, want %d", got, defaultGCPercent)
	}
}
