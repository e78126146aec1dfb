package framework

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// PreviousRelease is the commit the previous release is cut from: the last
// one before the ledger moved into ImageCacheSlices (status.ledger in format
// 1), so that upgrade and downgrade tests cross that change.
const PreviousRelease = "f4ee1082f0a9171e3ad33702ea4f3d748c1227ef"

// Checkout makes a tree of the project at a commit in dir (a git worktree of
// root), and returns what removes it. A clone without the commit (a shallow
// one) fetches the history from its origin first.
func Checkout(root, commit, dir string) (remove func(), err error) {
	git := func(args ...string) ([]byte, error) {
		return exec.Command("git", append([]string{"-C", root}, args...)...).CombinedOutput()
	}
	if _, err := git("cat-file", "-e", commit+"^{commit}"); err != nil {
		fetch := []string{"fetch", "--quiet", "origin"}
		if out, _ := git("rev-parse", "--is-shallow-repository"); string(out) == "true\n" {
			fetch = []string{"fetch", "--quiet", "--unshallow", "origin"}
		}
		if out, err := git(fetch...); err != nil {
			return nil, fmt.Errorf("commit %s is not in this clone, and fetching the history failed: %v\n%s", commit, err, out)
		}
	}
	if out, err := git("worktree", "add", "--detach", dir, commit); err != nil {
		return nil, fmt.Errorf("checking out commit %s: %v\n%s", commit, err, out)
	}
	return func() { _ = exec.Command("git", "-C", root, "worktree", "remove", "--force", dir).Run() }, nil
}

// BuildAt builds a command of the project (./cmd/NAME) as it was at a
// commit, into out.
func BuildAt(root, commit, name, out string) error {
	tmp, err := os.MkdirTemp("", "kube-fledged-at-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	tree := filepath.Join(tmp, "tree")
	remove, err := Checkout(root, commit, tree)
	if err != nil {
		return err
	}
	defer remove()
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/"+name)
	cmd.Dir = tree
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s at %s: %v\n%s", name, commit, err, b)
	}
	return nil
}

// Proc is a process a test started, with its log in a file.
type Proc struct{ p *process }

// StartProc runs bin with args, its output in logPath; it dies with the
// test binary, and Stop ends it by PID.
func StartProc(name, logPath, bin string, args ...string) (*Proc, error) {
	p, err := startProcess(name, logPath, bin, args...)
	if err != nil {
		return nil, err
	}
	return &Proc{p: p}, nil
}

// Stop ends the process: SIGTERM, then SIGKILL after grace.
func (c *Proc) Stop(grace time.Duration) { c.p.Stop(grace) }

// Exited says whether the process has ended.
func (c *Proc) Exited() bool { return c.p.exited() }

// LogTail returns the last lines of its log.
func (c *Proc) LogTail(lines int) string { return c.p.LogTail(lines) }
