package version

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestGet(t *testing.T) {
	built := func(version string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Version: version}, Settings: settings}, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123abcd"}
	dirty := debug.BuildSetting{Key: "vcs.modified", Value: "true"}
	for _, tc := range []struct {
		name              string
		version, revision string
		read              func() (*debug.BuildInfo, bool)
		want              Info
	}{
		{"stamped", "v1.2.0", "feedbeef", built("(devel)", rev), Info{"v1.2.0", "feedbeef", runtime.Version()}},
		{"a module build", "", "", built("v1.3.0", rev), Info{"v1.3.0", "0123abcd", runtime.Version()}},
		{"a build from a changed tree", "", "", built("(devel)", rev, dirty), Info{"dev", "0123abcd-dirty", runtime.Version()}},
		{"nothing says", "", "", none, Info{"dev", "unknown", runtime.Version()}},
	} {
		if got := get(tc.version, tc.revision, tc.read); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if s := (Info{"v1", "abc", "go1.26"}).String(); s != "v1 (revision abc, go1.26)" {
		t.Errorf("String: %q", s)
	}
}
