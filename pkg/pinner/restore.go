package pinner

import (
	"context"

	imagesapi "github.com/containerd/containerd/api/services/images/v1"

	"kubefledged.io/kube-fledged/pkg/cri"
)

// restorePins reads an image's records again after a command's write, and
// sets the pin label again on each record that a cache's pin (or a pin that
// predates the caches') holds without it. It returns the records read, and
// whether it set the label on any.
//
// A command reads a record, then writes only the labels it changes, so two
// caches' commands on one image can each write on a read from before the
// other's write: an unpin that saw no other cache takes the pin label away
// from under a pin just written, and a pin that saw the label there writes
// its own label alone after an unpin took the label away. Either way the
// last of the two writes is followed by its command's read here, which
// sees the other's write and puts the label back.
func (p *pinner) restorePins(ctx context.Context, image string) ([]*imagesapi.Image, bool, error) {
	recs, err := p.records(ctx, image)
	if err != nil {
		return nil, false, err
	}
	restored := false
	for _, rec := range recs {
		labels := rec.GetLabels()
		if labels[cri.LabelPinned] == cri.PinnedValue || len(pinnedBy(labels)) == 0 && labels[cri.LabelPinPredates] == "" {
			continue
		}
		if err := p.relabel(ctx, rec, map[string]string{cri.LabelPinned: cri.PinnedValue}); err != nil {
			return nil, false, err
		}
		restored = true
	}
	return recs, restored, nil
}
