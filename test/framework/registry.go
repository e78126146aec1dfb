package framework

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Registry is a container registry (Debian's docker-registry) serving plain
// HTTP on a free loopback port, with its storage in a scratch folder.
type Registry struct {
	// Host is host:port.
	Host string
	dir  string
	proc *process
	// ownsDir: Stop removes dir (StartRegistry made it).
	ownsDir bool
}

// RegistryBinary is where Debian's docker-registry package installs the registry.
const RegistryBinary = "/usr/bin/docker-registry"

// StartRegistry starts a registry and waits until it answers.
func StartRegistry(ctx context.Context) (*Registry, error) {
	dir, err := os.MkdirTemp("", "kube-fledged-registry-")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	r, err := StartRegistryAt(ctx, fmt.Sprintf("127.0.0.1:%d", ports[0]), dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	r.ownsDir = true
	return r, nil
}

// StartRegistryAt starts a registry on host (host:port) with its storage and
// log in dir, and waits until it answers. Stop leaves dir: a registry
// started again on the same host and dir serves what was pushed to it
// before, as a registry that went away and came back does.
func StartRegistryAt(ctx context.Context, host, dir string) (*Registry, error) {
	return StartRegistryIn(ctx, "", host, host, dir)
}

// StartRegistryIn is StartRegistryAt in a network namespace (none: this
// process's): the registry listens on listen there, and clients reach it as
// host (the same address, or a proxy's in front of it).
func StartRegistryIn(ctx context.Context, netns, listen, host, dir string) (*Registry, error) {
	if _, err := os.Stat(RegistryBinary); err != nil {
		return nil, missingBinary(RegistryBinary, "docker-registry")
	}
	r := &Registry{Host: host, dir: dir}
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), listen)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	bin, args := RegistryBinary, []string{"serve", cfgPath}
	if netns != "" {
		// ip execs the registry: the PID is the registry's.
		bin, args = "ip", append([]string{"netns", "exec", netns, RegistryBinary}, args...)
	}
	var err error
	if r.proc, err = startProcess("registry", filepath.Join(dir, "registry.log"), bin, args...); err != nil {
		return nil, err
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		if r.proc.exited() {
			return false, fmt.Errorf("registry exited: %v\n%s", r.proc.err, r.proc.LogTail(20))
		}
		resp, err := http.Get("http://" + r.Host + "/v2/")
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		r.Stop()
		return nil, fmt.Errorf("waiting for the registry on %s: %w", r.Host, err)
	}
	return r, nil
}

// Stop ends the registry by PID, and removes its storage when
// StartRegistry made it.
func (r *Registry) Stop() {
	if r == nil {
		return
	}
	r.proc.Stop(5 * time.Second)
	if r.ownsDir {
		_ = os.RemoveAll(r.dir)
	}
}

// Command runs a command from the project's root, for tests that drive make
// or go run as a user would.
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	if root, err := RepoRoot(); err == nil {
		cmd.Dir = root
	}
	return cmd
}
