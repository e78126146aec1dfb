// Package remover is the logic of the fledged-cri command, which the delete
// Jobs run on a node to remove images through the runtime's CRI socket.
package remover

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"kubefledged.io/kube-fledged/pkg/cri"
)

const usage = `usage: fledged-cri rmi [--socket PATH] [--timeout D] [--termination-log PATH] IMAGE...
Removes each IMAGE through the container runtime's CRI socket, and reports per
image: removed, already absent, or failed with the runtime's message. Exits 1
if any image failed.`

// DefaultTerminationLog is where Kubernetes reads a container's termination
// message from.
const DefaultTerminationLog = "/dev/termination-log"

// Main runs the command and returns its exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "rmi" {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("rmi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", "/run/containerd/containerd.sock", "the runtime's CRI socket")
	timeout := fs.Duration("timeout", 2*time.Minute, "time allowed for all removals")
	termLog := fs.String("termination-log", DefaultTerminationLog, "file to write the summary to (\"\" for none)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	images := fs.Args()
	if len(images) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var lines []string
	failed := false
	client, err := cri.Dial(ctx, *socket)
	if err != nil {
		for _, img := range images {
			lines = append(lines, fmt.Sprintf("%s: %s: %v", cri.Failed, img, err))
		}
		failed = true
	} else {
		defer client.Close()
		for _, img := range images {
			outcome, err := client.Remove(ctx, img)
			if err != nil {
				failed = true
				lines = append(lines, fmt.Sprintf("%s: %s: %v", outcome, img, err))
				continue
			}
			lines = append(lines, fmt.Sprintf("%s: %s", outcome, img))
		}
	}
	summary := strings.Join(lines, "\n")
	fmt.Fprintln(stdout, summary)
	if *termLog != "" {
		if err := os.WriteFile(*termLog, []byte(summary), 0o644); err != nil && !os.IsNotExist(err) {
			fmt.Fprintf(stderr, "fledged-cri: writing %s: %v\n", *termLog, err)
		}
	}
	if failed {
		return 1
	}
	return 0
}

// ParseSummary reads a summary back: image -> (outcome, message).
func ParseSummary(summary string) map[string][2]string {
	out := map[string][2]string{}
	for _, line := range strings.Split(summary, "\n") {
		outcome, rest, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		img, msg, _ := strings.Cut(rest, ": ")
		out[img] = [2]string{outcome, msg}
	}
	return out
}
