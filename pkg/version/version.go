// Package version says which build of kube-fledged a binary is: every
// binary prints it with --version, the controller logs it first and serves
// it as kubefledged_build_info.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Name is the program's name: its controllers name their work queues,
// their field manager and their events' source after it.
const Name = "kube-fledged"

// Version and Revision are set when the binary is built (make build, make
// image-local: -ldflags "-X kubefledged.io/kube-fledged/pkg/version.Version=...").
// Unset, they come from the Go module's build information: the module's
// version (go install ...@v1.2.3) and the VCS revision the build was made
// from.
var (
	Version  = ""
	Revision = ""
)

// Info is a build's version, revision and Go version.
type Info struct {
	Version, Revision, GoVersion string
}

// Get returns this binary's build information: "dev" and "unknown" where
// nothing says.
func Get() Info {
	return get(Version, Revision, readBuildInfo)
}

var readBuildInfo = debug.ReadBuildInfo

func get(version, revision string, read func() (*debug.BuildInfo, bool)) Info {
	if bi, ok := read(); ok {
		if version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if revision == "" {
					revision = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && revision != "" && revision == settingValue(bi, "vcs.revision") {
			revision += "-dirty"
		}
	}
	if version == "" {
		version = "dev"
	}
	if revision == "" {
		revision = "unknown"
	}
	return Info{Version: version, Revision: revision, GoVersion: runtime.Version()}
}

func settingValue(bi *debug.BuildInfo, key string) string {
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

// String is the line --version prints after the binary's name.
func (i Info) String() string {
	return fmt.Sprintf("%s (revision %s, %s)", i.Version, i.Revision, i.GoVersion)
}
