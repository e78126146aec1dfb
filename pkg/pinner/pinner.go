// Package pinner is the logic of the fledged-cri pin and unpin commands,
// which the pin Jobs run on a node to keep cached images from the kubelet's
// image garbage collection.
//
// containerd's CRI reports an image as pinned when one of its records carries
// the label io.cri-containerd.pinned=pinned, and the kubelet never collects a
// pinned image. The commands set and clear that label through containerd's
// own image API (namespace k8s.io), on the same socket as its CRI. Beside it,
// each cache that pins an image leaves a label of its own,
// kubefledged.io/pinned-by.<cache UID>, so that a cache unpins only what it
// pinned: the pin label goes with the last of these, and never from an image
// that was pinned before any cache pinned it (the sandbox image, an
// operator's own pin), which kubefledged.io/pin-predates marks.
//
// The files, in the order a command goes through them: pinner.go (the
// command, reading the records, a pin's labels and budget), unpin.go (an
// unpin's labels, and the names that keep the image pinned), restore.go (the
// pin label put back after a write that raced another cache's), report.go
// (the wait for the CRI to report the pin, and the rollback of a pin it
// does not report).
package pinner

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/remover"
)

// containerdNamespace is the containerd namespace of the CRI's images.
const containerdNamespace = "k8s.io"

const usage = `usage: fledged-cri pin --cache UID [--cache-name NAMESPACE/NAME] [--budget PERCENT --root PATH] [--socket PATH] [--timeout D] [--termination-log PATH] IMAGE...
Pins each IMAGE on this node for the cache against the kubelet's image garbage
collection, through containerd's image API, unless the node's pinned images
would then pass PERCENT of the image filesystem at PATH (0: no budget). Reports
per image: pinned, already absent, over budget, unsupported (the runtime cannot
pin) or failed. Exits 1 if any image failed.
       fledged-cri unpin --cache UID [--socket PATH] [--timeout D] [--termination-log PATH] IMAGE...
Removes the cache's pin from each IMAGE, and the image's pin with the last one
unless it was pinned before any cache pinned it. Reports per image: unpinned,
already absent or failed.`

// Main runs "pin ARGS" or "unpin ARGS" and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "pin" && args[0] != "unpin") {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", "/run/containerd/containerd.sock", "containerd's socket")
	timeout := fs.Duration("timeout", 2*time.Minute, "time allowed for all the images")
	termLog := fs.String("termination-log", remover.DefaultTerminationLog, "file to write the summary to (\"\" for none)")
	uid := fs.String("cache", "", "the UID of the ImageCache the pins are for")
	owner := fs.String("cache-name", "", "the ImageCache's namespace/name, recorded beside its pins")
	budget := fs.Int("budget", 0, "the most percent of the image filesystem pinned images may take (0: no budget)")
	root := fs.String("root", "", "a directory on the runtime's image filesystem (its root), for --budget")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	imgs := fs.Args()
	switch {
	case len(imgs) == 0 || *uid == "":
		fmt.Fprintln(stderr, usage)
		return 2
	case *budget < 0 || *budget > 100:
		fmt.Fprintf(stderr, "fledged-cri %s: --budget %d is not a percentage from 0 to 100\n", verb, *budget)
		return 2
	case *budget > 0 && *root == "":
		fmt.Fprintf(stderr, "fledged-cri %s: --budget needs --root, a directory on the image filesystem\n", verb)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	results := make([]remover.Result, len(imgs))
	p, err := dial(ctx, *socket)
	if err != nil {
		outcome := cri.Failed
		if errors.Is(err, errUnsupported) {
			outcome = cri.Unsupported
		}
		for i := range results {
			results[i] = remover.Result{Outcome: outcome, Message: err.Error()}
		}
	} else {
		defer p.close()
		p.uid, p.owner, p.budget, p.root = *uid, *owner, *budget, *root
		for i, img := range imgs {
			if verb == "pin" {
				results[i] = p.pin(ctx, img)
			} else {
				results[i] = p.unpin(ctx, img)
			}
		}
	}
	failed := false
	lines := make([]string, len(imgs))
	for i, r := range results {
		failed = failed || r.Outcome == cri.Failed
		lines[i] = fmt.Sprintf("%s: %s", r.Outcome, imgs[i])
		if r.Message != "" {
			lines[i] += ": " + r.Message
		}
	}
	fmt.Fprintln(stdout, strings.Join(lines, "\n"))
	if *termLog != "" {
		if err := os.WriteFile(*termLog, []byte(remover.FormatSummary(results, remover.SummaryLimit)), 0o644); err != nil && !os.IsNotExist(err) {
			fmt.Fprintf(stderr, "fledged-cri: writing %s: %v\n", *termLog, err)
		}
	}
	if failed {
		return 1
	}
	return 0
}

// errUnsupported wraps why the runtime cannot pin.
var errUnsupported = errors.New("the runtime cannot pin images")

// pinner pins and unpins images on one node.
type pinner struct {
	cri    *cri.Client
	store  imagesapi.ImagesClient
	uid    string
	owner  string
	budget int
	root   string
	// pinnedBytes is the size of the images pinned on the node, by the
	// CRI's measure, read at the first pin that needs it (-1 before).
	pinnedBytes int64
}

func dial(ctx context.Context, socket string) (*pinner, error) {
	client, err := cri.Dial(ctx, socket)
	if err != nil {
		return nil, err
	}
	if name, _, _ := strings.Cut(client.Runtime(), "://"); name != "containerd" {
		_ = client.Close()
		return nil, fmt.Errorf("%w: %s is not containerd, whose image labels hold pins", errUnsupported, client.Runtime())
	}
	return &pinner{cri: client, store: imagesapi.NewImagesClient(client.Conn()), pinnedBytes: -1}, nil
}

func (p *pinner) close() { _ = p.cri.Close() }

// pinnedByKey is this cache's label.
func (p *pinner) pinnedByKey() string { return cri.LabelPinnedByPrefix + p.uid }

// records returns containerd's records of an image, under the names the
// runtime knows it by (a tag, or a digest); none when it has none.
func (p *pinner) records(ctx context.Context, image string) ([]*imagesapi.Image, error) {
	names, err := images.Keys(image)
	if err != nil {
		return nil, err
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "containerd-namespace", containerdNamespace)
	var out []*imagesapi.Image
	for _, name := range names {
		resp, err := p.store.Get(ctx, &imagesapi.GetImageRequest{Name: name})
		switch status.Code(err) {
		case codes.OK:
			out = append(out, resp.GetImage())
		case codes.NotFound:
		case codes.Unimplemented:
			return nil, fmt.Errorf("%w: %s serves no containerd image API: %v", errUnsupported, p.cri.Runtime(), err)
		default:
			return nil, fmt.Errorf("reading containerd's record of %s: %w", name, err)
		}
	}
	return out, nil
}

// relabel sets (value != "") or removes (value == "") labels of a record,
// and no other field of it.
func (p *pinner) relabel(ctx context.Context, rec *imagesapi.Image, changes map[string]string) error {
	if len(changes) == 0 {
		return nil
	}
	labels := map[string]string{}
	for k, v := range rec.GetLabels() {
		labels[k] = v
	}
	var paths []string
	for k, v := range changes {
		paths = append(paths, "labels."+k)
		if v == "" {
			delete(labels, k)
		} else {
			labels[k] = v
		}
	}
	sort.Strings(paths)
	ctx = metadata.AppendToOutgoingContext(ctx, "containerd-namespace", containerdNamespace)
	// The record goes whole (containerd reads its target), the mask
	// saying which labels change.
	update := &imagesapi.Image{Name: rec.GetName(), Labels: labels, Target: rec.GetTarget()}
	if _, err := p.store.Update(ctx, &imagesapi.UpdateImageRequest{Image: update, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}}); err != nil {
		return fmt.Errorf("labelling containerd's record of %s: %w", rec.GetName(), err)
	}
	rec.Labels = labels
	return nil
}

// pin pins an image for the cache, within the budget.
func (p *pinner) pin(ctx context.Context, image string) remover.Result {
	st, err := p.cri.ImageStatus(ctx, image)
	if err != nil {
		return failed(err)
	}
	if st == nil {
		return remover.Result{Outcome: cri.AlreadyAbsent, Message: "the image is not on this node"}
	}
	recs, err := p.records(ctx, image)
	if err != nil {
		return failed(err)
	}
	if len(recs) == 0 {
		return failed(fmt.Errorf("the runtime reports %s, but containerd has no record of that name", image))
	}
	return p.pinRecords(ctx, image, st, recs)
}

// pinRecords pins an image from what pin read of it: the CRI's status and
// containerd's records.
func (p *pinner) pinRecords(ctx context.Context, image string, st *runtimeapi.Image, recs []*imagesapi.Image) remover.Result {
	size := int64(st.GetSize())
	if !st.GetPinned() {
		if refusal, err := p.overBudget(ctx, size); err != nil {
			return failed(err)
		} else if refusal != "" {
			return remover.Result{Outcome: cri.OverBudget, Message: refusal}
		}
	}
	for _, rec := range recs {
		changes := map[string]string{p.pinnedByKey(): p.owner}
		if p.owner == "" {
			changes[p.pinnedByKey()] = p.uid
		}
		labels := rec.GetLabels()
		if labels[cri.LabelPinned] == cri.PinnedValue && len(pinnedBy(labels)) == 0 && labels[cri.LabelPinPredates] == "" {
			changes[cri.LabelPinPredates] = "true"
		}
		if labels[cri.LabelPinned] != cri.PinnedValue {
			changes[cri.LabelPinned] = cri.PinnedValue
		}
		if err := p.relabel(ctx, rec, changes); err != nil {
			return failed(err)
		}
	}
	// The pin label read there may have gone since, with another
	// cache's unpin.
	_, restored, err := p.restorePins(ctx, image)
	if err != nil {
		return failed(err)
	}
	if !st.GetPinned() || restored {
		if err := p.awaitReported(ctx, image, true); err != nil {
			return p.rollback(ctx, recs, err)
		}
	}
	if !st.GetPinned() && p.pinnedBytes >= 0 {
		p.pinnedBytes += size
	}
	return remover.Result{Outcome: cri.Pinned}
}

// overBudget says why pinning size more bytes would take the node's pinned
// images past the budget, or "".
func (p *pinner) overBudget(ctx context.Context, size int64) (string, error) {
	if p.budget == 0 {
		return "", nil
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(p.root, &fs); err != nil {
		return "", fmt.Errorf("reading the image filesystem's size at %s: %w", p.root, err)
	}
	total := int64(fs.Blocks) * int64(fs.Bsize)
	limit := total / 100 * int64(p.budget)
	if p.pinnedBytes < 0 {
		list, err := p.cri.ListImages(ctx)
		if err != nil {
			return "", err
		}
		p.pinnedBytes = 0
		for _, img := range list {
			if img.GetPinned() {
				p.pinnedBytes += int64(img.GetSize())
			}
		}
	}
	if p.pinnedBytes+size <= limit {
		return "", nil
	}
	return fmt.Sprintf("pinning it (%s) would bring the node's pinned images to %s, over the budget of %s (%d%% of the %s image filesystem)",
		FormatBytes(size), FormatBytes(p.pinnedBytes+size), FormatBytes(limit), p.budget, FormatBytes(total)), nil
}
