// Package helper is the logic of the fledged-helper binary.
package helper

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"kubefledged.io/kube-fledged/pkg/version"
)

const usage = `usage:
  fledged-helper install DEST   copy this binary to DEST (mode 0755)
  fledged-helper pulled IMAGE   report that IMAGE is on this node, and exit 0
  fledged-helper --version      print the version`

// Main runs the helper with its arguments and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == "--version" {
		fmt.Fprintln(stdout, "fledged-helper "+version.Get().String())
		return 0
	}
	if len(args) != 2 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch args[0] {
	case "install":
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "fledged-helper: finding own binary: %v\n", err)
			return 1
		}
		if err := Install(self, args[1]); err != nil {
			fmt.Fprintf(stderr, "fledged-helper: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "fledged-helper: installed at %s\n", args[1])
		return 0
	case "pulled":
		host, _ := os.Hostname()
		fmt.Fprintf(stdout, "kube-fledged: image %s is cached on this node (%s)\n", args[1], host)
		return 0
	default:
		fmt.Fprintln(stderr, usage)
		return 2
	}
}

// Install copies the binary at src to dest, executable by everyone, through a
// temporary file so that dest is never seen half written.
func Install(src, dest string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("opening %s: %w", src, err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".fledged-helper-")
	if err != nil {
		return fmt.Errorf("creating a file next to %s: %w", dest, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("copying to %s: %w", dest, err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("installing %s: %w", dest, err)
	}
	return nil
}
