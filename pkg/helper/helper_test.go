package helper

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"kubefledged.io/kube-fledged/pkg/version"
)

func TestPulledPrintsAndSucceeds(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"pulled", "nginx:1.27"}, &out, &errOut); code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, errOut.String())
	}
	if !strings.Contains(out.String(), "image nginx:1.27 is cached") {
		t.Errorf("output %q", out.String())
	}
}

func TestBadUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"pulled"}, {"frobnicate", "x"}} {
		var out, errOut bytes.Buffer
		if code := Main(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit code %d, want 2", args, code)
		}
		if !strings.Contains(errOut.String(), "usage:") {
			t.Errorf("%v: no usage on stderr", args)
		}
	}
}

// TestInstalledBinaryRuns builds the real helper, installs a copy the way the
// init container does, and runs the copy as an image container would.
func TestInstalledBinaryRuns(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "fledged-helper")
	build := exec.Command("go", "build", "-o", bin, "kubefledged.io/kube-fledged/cmd/fledged-helper")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the helper: %v\n%s", err, out)
	}
	shared := filepath.Join(dir, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(shared, "fledged-helper")
	if out, err := exec.Command(bin, "install", dest).CombinedOutput(); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	fi, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("installed mode %v, want 0755", fi.Mode().Perm())
	}
	out, err := exec.Command(dest, "pulled", "registry.local/app:v1").CombinedOutput()
	if err != nil {
		t.Fatalf("running the installed copy: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "registry.local/app:v1 is cached") {
		t.Errorf("output %q", out)
	}
	if err := Install(filepath.Join(dir, "missing"), filepath.Join(shared, "x")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("installing from a missing file: %v", err)
	}
}

func TestVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"--version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "fledged-helper "+version.Get().Version+" (revision ") {
		t.Errorf("--version: exit %d, %q %q", code, out.String(), errOut.String())
	}
}
