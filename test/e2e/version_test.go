//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestTheControllerSaysItsVersion: the fledged that make build made says
// the version hack/version.sh gives for this tree (VERSION and git) and the
// revision git gives: with --version, in its first log line, and as
// kubefledged_build_info.
func TestTheControllerSaysItsVersion(t *testing.T) {
	run := func(name string, args ...string) string {
		cmd := exec.Command(name, args...)
		cmd.Dir = projectRoot
		out, err := cmd.Output()
		if err != nil {
			t.Skipf("%s %s: %v (not a git checkout)", name, strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	version, revision := run("bash", "hack/version.sh"), run("git", "rev-parse", "HEAD")
	out, err := exec.Command(fledgedBin, "--version").CombinedOutput()
	want := fmt.Sprintf("fledged %s (revision %s, %s)\n", version, revision, runtime.Version())
	if err != nil || string(out) != want {
		t.Errorf("fledged --version: %v: %q, want %q", err, out, want)
	}

	p := startController(t)
	var first string
	waitFor(t, 30*time.Second, "the controller's first log line", func() bool {
		data, _ := os.ReadFile(p.log)
		first, _, _ = strings.Cut(string(data), "\n")
		return strings.Contains(string(data), "\n")
	})
	if !strings.Contains(first, `"Starting kube-fledged"`) || !strings.Contains(first, `version="`+version+`"`) ||
		!strings.Contains(first, `revision="`+revision+`"`) {
		t.Errorf("first log line %q, want it to say the version %s and revision %s", first, version, revision)
	}
	sample := fmt.Sprintf(`kubefledged_build_info{goversion=%q,revision=%q,version=%q}`, runtime.Version(), revision, version)
	waitFor(t, 30*time.Second, sample+" to be 1", func() bool {
		v, err := scrape(p.metricsAddr, sample)
		return err == nil && v == 1
	})
}
