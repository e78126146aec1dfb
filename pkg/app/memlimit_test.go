package app

import (
	"math"
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
