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
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/version"
)

const usage = `usage: fledged-cri rmi [--socket PATH] [--timeout D] [--termination-log PATH] [--keep NAME]... IMAGE...
Removes each IMAGE through the container runtime's CRI socket, and reports per
image: removed, already absent, kept (the runtime knows it under a --keep NAME
too: it removes an image, not a name), or failed with the runtime's message.
Exits 1 if any image failed.
       fledged-cri pin|unpin ... (fledged-cri pin with no image for its usage)
       fledged-cri --version`

// DefaultTerminationLog is where Kubernetes reads a container's termination
// message from.
const DefaultTerminationLog = "/dev/termination-log"

// Main runs the command and returns its exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == "--version" {
		fmt.Fprintln(stdout, "fledged-cri "+version.Get().String())
		return 0
	}
	if len(args) == 0 || args[0] != "rmi" {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("rmi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", "/run/containerd/containerd.sock", "the runtime's CRI socket")
	timeout := fs.Duration("timeout", 2*time.Minute, "time allowed for all removals")
	termLog := fs.String("termination-log", DefaultTerminationLog, "file to write the summary to (\"\" for none)")
	keep := keepSet{}
	fs.Var(keep, "keep", "a name (normalised) whose image must stay; repeated")
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

	results := make([]Result, len(images))
	var lines []string
	failed := false
	client, err := cri.Dial(ctx, *socket)
	if err != nil {
		for i, img := range images {
			results[i] = Result{Outcome: cri.Failed, Message: err.Error()}
			lines = append(lines, fmt.Sprintf("%s: %s: %v", cri.Failed, img, err))
		}
		failed = true
	} else {
		defer client.Close()
		for i, img := range images {
			if other, err := keptFor(ctx, client, img, keep); err != nil || other != "" {
				if err != nil {
					failed = true
					results[i] = Result{Outcome: cri.Failed, Message: err.Error()}
					lines = append(lines, fmt.Sprintf("%s: %s: %v", cri.Failed, img, err))
					continue
				}
				msg := "it is also " + other + ", which stays on this node"
				results[i] = Result{Outcome: cri.Kept, Message: msg}
				lines = append(lines, fmt.Sprintf("%s: %s: %s", cri.Kept, img, msg))
				continue
			}
			outcome, err := client.Remove(ctx, img)
			results[i] = Result{Outcome: outcome}
			if err != nil {
				failed = true
				results[i].Message = err.Error()
				lines = append(lines, fmt.Sprintf("%s: %s: %v", outcome, img, err))
				continue
			}
			lines = append(lines, fmt.Sprintf("%s: %s", outcome, img))
		}
	}
	// The log has every line in full; the termination message, which the
	// kubelet cuts at 4 KiB, has the compact summary.
	fmt.Fprintln(stdout, strings.Join(lines, "\n"))
	if *termLog != "" {
		if err := os.WriteFile(*termLog, []byte(FormatSummary(results, SummaryLimit)), 0o644); err != nil && !os.IsNotExist(err) {
			fmt.Fprintf(stderr, "fledged-cri: writing %s: %v\n", *termLog, err)
		}
	}
	if failed {
		return 1
	}
	return 0
}

// keepSet is the --keep names, normalised.
type keepSet map[string]bool

func (k keepSet) String() string { return fmt.Sprint(map[string]bool(k)) }

func (k keepSet) Set(name string) error {
	key, err := images.Normalize(name)
	if err != nil {
		return err
	}
	k[key] = true
	return nil
}

// keptFor returns another name of the image the runtime knows it under that
// must stay, or "": its tags and digests, normalised, against keep.
func keptFor(ctx context.Context, client *cri.Client, image string, keep keepSet) (string, error) {
	if len(keep) == 0 {
		return "", nil
	}
	st, err := client.ImageStatus(ctx, image)
	if err != nil || st == nil {
		return "", err
	}
	self, _ := images.Normalize(image)
	for _, name := range append(append([]string(nil), st.GetRepoTags()...), st.GetRepoDigests()...) {
		if key, err := images.Normalize(name); err == nil && key != self && keep[key] {
			return name, nil
		}
	}
	return "", nil
}
