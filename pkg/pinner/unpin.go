package pinner

import (
	"context"
	"fmt"
	"sort"
	"strings"

	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"google.golang.org/grpc/metadata"

	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/remover"
)

// unpin removes the cache's pin from an image.
func (p *pinner) unpin(ctx context.Context, image string) remover.Result {
	recs, err := p.records(ctx, image)
	if err != nil {
		return failed(err)
	}
	if len(recs) == 0 {
		return remover.Result{Outcome: cri.AlreadyAbsent, Message: "the image is not on this node"}
	}
	return p.unpinRecords(ctx, image, recs)
}

// unpinRecords unpins an image from the records unpin read of it.
func (p *pinner) unpinRecords(ctx context.Context, image string, recs []*imagesapi.Image) remover.Result {
	var still []string
	released := false
	for _, rec := range recs {
		was := rec.GetLabels()[cri.LabelPinned] == cri.PinnedValue
		why, err := p.unpinRecord(ctx, rec)
		if err != nil {
			return failed(err)
		}
		if why != "" {
			still = append(still, why)
		}
		released = released || was && rec.GetLabels()[cri.LabelPinned] != cri.PinnedValue
	}
	if released {
		// Another cache may have pinned the image since the records
		// were read: its pin keeps the image pinned.
		again, restored, err := p.restorePins(ctx, image)
		if err != nil {
			return failed(err)
		}
		for _, rec := range again {
			if why := p.keptFor(rec.GetLabels()); restored && why != "" {
				still = append(still, why)
			}
		}
	}
	if len(still) > 0 {
		return remover.Result{Outcome: cri.Unpinned, Message: "it stays pinned: " + strings.Join(dedupe(still), "; ")}
	}
	if released {
		// The CRI reports the image pinned while any of its names is:
		// pinned under another name, it never reports it unpinned.
		others, err := p.pinnedElsewhere(ctx, recs)
		if err != nil {
			return failed(err)
		}
		if len(others) > 0 {
			return remover.Result{Outcome: cri.Unpinned, Message: "it stays pinned: pinned under another name, " + strings.Join(others, ", ")}
		}
		// Unpinned means the kubelet may collect it: the CRI, which
		// learns of the label by an event, says so too.
		if err := p.awaitReported(ctx, image, false); err != nil {
			return failed(err)
		}
	}
	return remover.Result{Outcome: cri.Unpinned}
}

// pinnedElsewhere names, in order, the other records of the content of recs
// (the same target) that carry the pin label: an operator's pin of another
// tag, another cache's pin of a digest.
func (p *pinner) pinnedElsewhere(ctx context.Context, recs []*imagesapi.Image) ([]string, error) {
	ours := map[string]bool{}
	var filters []string // containerd lists the images that match any
	for _, rec := range recs {
		ours[rec.GetName()] = true
		if d := rec.GetTarget().GetDigest(); d != "" {
			filters = append(filters, "target.digest=="+d)
		}
	}
	if len(filters) == 0 {
		return nil, nil // no filter would list every image
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "containerd-namespace", containerdNamespace)
	resp, err := p.store.List(ctx, &imagesapi.ListImagesRequest{Filters: filters})
	if err != nil {
		return nil, fmt.Errorf("listing containerd's records of %s's content: %w", recs[0].GetName(), err)
	}
	var names []string
	for _, img := range resp.GetImages() {
		if !ours[img.GetName()] && img.GetLabels()[cri.LabelPinned] == cri.PinnedValue {
			names = append(names, img.GetName())
		}
	}
	return dedupe(names), nil
}

// unpinRecord removes the cache's label from a record, and the pin with the
// last cache's unless it predates them. It says why the record stays
// pinned, or "".
func (p *pinner) unpinRecord(ctx context.Context, rec *imagesapi.Image) (string, error) {
	labels := rec.GetLabels()
	changes := map[string]string{}
	if _, ok := labels[p.pinnedByKey()]; ok {
		changes[p.pinnedByKey()] = ""
	}
	why := p.keptFor(labels)
	switch {
	case why != "" && len(p.otherCaches(labels)) == 0:
		// A pin that predates the caches' stays; its mark goes with
		// the last cache's.
		changes[cri.LabelPinPredates] = ""
	case why != "":
	case labels[cri.LabelPinned] == cri.PinnedValue && len(changes) > 0:
		changes[cri.LabelPinned] = ""
	case labels[cri.LabelPinned] == cri.PinnedValue:
		why = "pinned by something other than kube-fledged"
	}
	return why, p.relabel(ctx, rec, changes)
}

// otherCaches lists the caches other than this one that pinned a record
// (their namespace/name).
func (p *pinner) otherCaches(labels map[string]string) []string {
	var others []string
	for _, k := range pinnedBy(labels) {
		if k != p.pinnedByKey() {
			others = append(others, labels[k])
		}
	}
	return others
}

// keptFor says what keeps a record pinned besides this cache: other
// caches, or a pin that predates the caches'; "" when nothing does.
func (p *pinner) keptFor(labels map[string]string) string {
	if others := p.otherCaches(labels); len(others) > 0 {
		return "pinned for ImageCache " + strings.Join(others, ", ")
	}
	if labels[cri.LabelPinPredates] != "" {
		return "it was pinned before a cache pinned it"
	}
	return ""
}

// pinnedBy lists, in order, the label keys of the caches that pinned a record.
func pinnedBy(labels map[string]string) []string {
	var out []string
	for k := range labels {
		if strings.HasPrefix(k, cri.LabelPinnedByPrefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func failed(err error) remover.Result {
	return remover.Result{Outcome: cri.Failed, Message: err.Error()}
}

func dedupe(in []string) []string {
	sort.Strings(in)
	out := in[:0]
	for i, s := range in {
		if i == 0 || s != in[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// FormatBytes writes a size in bytes for people: "2.1 GiB", "340 MiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	suffix := "KMGTP"[exp : exp+1]
	if v >= 100 {
		return fmt.Sprintf("%.0f %siB", v, suffix)
	}
	return fmt.Sprintf("%.1f %siB", v, suffix)
}
