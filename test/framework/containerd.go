package framework

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// ContainerdBinary is where Debian's containerd package installs containerd.
const ContainerdBinary = "/usr/bin/containerd"

// Containerd is a containerd with its CRI plugin, on a private socket, with its
// root, state and config in a scratch folder.
type Containerd struct {
	// Socket is the CRI socket's path.
	Socket string
	dir    string
	proc   *process
}

// StartContainerd starts containerd. Registries listed in plainHTTP (host:port)
// are reached over plain HTTP. It needs root.
func StartContainerd(ctx context.Context, plainHTTP ...string) (*Containerd, error) {
	if _, err := os.Stat(ContainerdBinary); err != nil {
		return nil, missingBinary(ContainerdBinary, "containerd")
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
	config := fmt.Sprintf(`version = 2
root = "%[1]s/root"
state = "%[1]s/state"
[grpc]
  address = "%[1]s/containerd.sock"
[ttrpc]
  address = "%[1]s/containerd.sock.ttrpc"
[debug]
  address = "%[1]s/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/opt"
[plugins."io.containerd.grpc.v1.cri"]
  # This sandbox lacks CAP_SYS_RESOURCE.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "%[2]s"
`, dir, hosts)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return nil, err
	}
	if c.proc, err = startProcess("containerd", filepath.Join(dir, "containerd.log"), ContainerdBinary, "--config", cfgPath); err != nil {
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
