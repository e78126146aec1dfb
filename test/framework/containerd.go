package framework

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// DebianContainerd is where Debian's containerd package installs containerd
// (1.6 on Debian 12), which the CRI tests also run against, for containerd
// 1.x, when it is installed.
const DebianContainerd = "/usr/bin/containerd"

// ContainerdBuild is one containerd the tests can run.
type ContainerdBuild struct {
	// Name says which: "containerd-2" (hack/testbin.sh builds it from its
	// Go module), "containerd-2.3" and the like (the long-term-support
	// line it also builds, named by its folder in the bin folder) or
	// "containerd-1" (Debian's).
	Name string
	// Binary is containerd's path; its runc shim is beside it.
	Binary string
	// Major is its major version, which picks its configuration's format.
	Major int
}

// Containerds returns the containerds to run the CRI tests against: the
// test bed's containerd 2 and its long-term-support containerd 2.x always
// (t fails if either is missing), and Debian's containerd 1.x when
// installed. It skips t without root.
func Containerds(t testing.TB) []ContainerdBuild {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root to run containerd (running as uid %d): run `make test` as root", os.Geteuid())
	}
	dir, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	builds := []ContainerdBuild{{Name: "containerd-2", Binary: filepath.Join(dir, "containerd"), Major: 2}}
	if _, err := os.Stat(builds[0].Binary); err != nil {
		t.Fatalf("containerd 2 missing in %s: run hack/testbin.sh (make test does)", dir)
	}
	// hack/testbin.sh links the LTS containerd, with its own shim, into a
	// folder named by its version, the one folder of that name it leaves.
	lts, err := filepath.Glob(filepath.Join(dir, "containerd-2.*", "containerd"))
	if err != nil || len(lts) != 1 {
		t.Fatalf("want one LTS containerd in %s/containerd-2.*, found %v (%v): run hack/testbin.sh (make test does)", dir, lts, err)
	}
	builds = append(builds, ContainerdBuild{Name: filepath.Base(filepath.Dir(lts[0])), Binary: lts[0], Major: 2})
	if _, err := os.Stat(DebianContainerd); err == nil {
		builds = append(builds, ContainerdBuild{Name: "containerd-1", Binary: DebianContainerd, Major: 1})
	}
	return builds
}

// Containerd is a containerd with its CRI plugin, on a private socket, with its
// root, state and config in a scratch folder.
type Containerd struct {
	// Socket is the CRI socket's path.
	Socket string
	dir    string
	proc   *process
}

// ContainerdConfig is a containerd configuration for a test: its folders
// under dir, the CRI plugin with the native snapshotter, registries'
// hosts.toml in hostsDir, and where there is one, the sandbox image and the
// CNI folders (the real node). Containerd 2 gets the version 3 format
// (plugins io.containerd.cri.v1.*), containerd 1 the version 2 format.
type ContainerdConfig struct {
	Dir, Socket, HostsDir string
	SandboxImage          string
	CNIBinDir, CNIConfDir string
}

// Render writes the configuration in the format of containerd's major
// version.
func (c ContainerdConfig) Render(major int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = %d\nroot = %q\nstate = %q\n", map[bool]int{true: 3, false: 2}[major >= 2],
		filepath.Join(c.Dir, "root"), filepath.Join(c.Dir, "state"))
	fmt.Fprintf(&b, "[grpc]\n  address = %q\n[ttrpc]\n  address = %q\n[debug]\n  address = %q\n[metrics]\n  address = \"\"\n",
		c.Socket, c.Socket+".ttrpc", filepath.Join(c.Dir, "debug.sock"))
	fmt.Fprintf(&b, "[plugins.\"io.containerd.internal.v1.opt\"]\n  path = %q\n", filepath.Join(c.Dir, "opt"))
	if major >= 2 {
		b.WriteString("[plugins.\"io.containerd.cri.v1.images\"]\n  snapshotter = \"native\"\n")
		if c.SandboxImage != "" {
			fmt.Fprintf(&b, "  [plugins.\"io.containerd.cri.v1.images\".pinned_images]\n    sandbox = %q\n", c.SandboxImage)
		}
		fmt.Fprintf(&b, "  [plugins.\"io.containerd.cri.v1.images\".registry]\n    config_path = %q\n", c.HostsDir)
		// The CRI pulls through the transfer service, which unpacks for
		// its own list of platforms and snapshotters: native too.
		fmt.Fprintf(&b, "[plugins.\"io.containerd.transfer.v1.local\"]\n  [[plugins.\"io.containerd.transfer.v1.local\".unpack_config]]\n"+
			"    platform = \"linux/%s\"\n    snapshotter = \"native\"\n", runtime.GOARCH)
		b.WriteString("[plugins.\"io.containerd.cri.v1.runtime\"]\n  # This sandbox lacks CAP_SYS_RESOURCE.\n  restrict_oom_score_adj = true\n")
		if c.CNIConfDir != "" {
			fmt.Fprintf(&b, "  [plugins.\"io.containerd.cri.v1.runtime\".cni]\n    bin_dirs = [%q]\n    conf_dir = %q\n", c.CNIBinDir, c.CNIConfDir)
		}
		return b.String()
	}
	b.WriteString("[plugins.\"io.containerd.grpc.v1.cri\"]\n  # This sandbox lacks CAP_SYS_RESOURCE.\n  restrict_oom_score_adj = true\n")
	if c.SandboxImage != "" {
		fmt.Fprintf(&b, "  sandbox_image = %q\n", c.SandboxImage)
	}
	b.WriteString("  [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n    snapshotter = \"native\"\n")
	if c.CNIConfDir != "" {
		fmt.Fprintf(&b, "  [plugins.\"io.containerd.grpc.v1.cri\".cni]\n    bin_dir = %q\n    conf_dir = %q\n", c.CNIBinDir, c.CNIConfDir)
	}
	fmt.Fprintf(&b, "  [plugins.\"io.containerd.grpc.v1.cri\".registry]\n    config_path = %q\n", c.HostsDir)
	return b.String()
}

// StartContainerd starts a containerd build. Registries listed in plainHTTP
// (host:port) are reached over plain HTTP. It needs root.
func StartContainerd(ctx context.Context, build ContainerdBuild, plainHTTP ...string) (*Containerd, error) {
	if _, err := os.Stat(build.Binary); err != nil {
		return nil, missingBinary(build.Binary, "containerd")
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("containerd needs root; running as uid %d", os.Geteuid())
	}
	// Unix socket paths are limited to ~108 bytes: keep the folder short.
	dir, err := os.MkdirTemp("/tmp", "kf-ctd-")
	if err != nil {
		return nil, err
	}
	c := &Containerd{Socket: filepath.Join(dir, "containerd.sock"), dir: dir}
	hosts := filepath.Join(dir, "certs.d")
	for _, h := range plainHTTP {
		if err := os.MkdirAll(filepath.Join(hosts, h), 0o755); err != nil {
			return nil, err
		}
		toml := fmt.Sprintf("server = \"http://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n", h, h)
		if err := os.WriteFile(filepath.Join(hosts, h, "hosts.toml"), []byte(toml), 0o644); err != nil {
			return nil, err
		}
	}
	cfgPath := filepath.Join(dir, "config.toml")
	cfg := ContainerdConfig{Dir: dir, Socket: c.Socket, HostsDir: hosts}.Render(build.Major)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	// Its own runc shim first: another containerd's may be on the PATH.
	env := []string{"PATH=" + filepath.Dir(build.Binary) + string(os.PathListSeparator) + os.Getenv("PATH")}
	if c.proc, err = startProcessEnv("containerd", filepath.Join(dir, "containerd.log"), env, build.Binary, "--config", cfgPath); err != nil {
		return nil, err
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		if c.proc.exited() {
			return false, fmt.Errorf("containerd exited: %v\n%s", c.proc.err, c.proc.LogTail(30))
		}
		_, err := os.Stat(c.Socket)
		return err == nil, nil
	})
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("waiting for containerd: %w", err)
	}
	return c, nil
}

// LogTail returns the end of containerd's log.
func (c *Containerd) LogTail(lines int) string { return c.proc.LogTail(lines) }

// Stop ends containerd by PID and removes its folder.
func (c *Containerd) Stop() {
	if c == nil {
		return
	}
	c.proc.Stop(10 * time.Second)
	_ = os.RemoveAll(c.dir)
}
