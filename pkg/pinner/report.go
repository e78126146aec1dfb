package pinner

import (
	"context"
	"errors"
	"fmt"
	"time"

	imagesapi "github.com/containerd/containerd/api/services/images/v1"

	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/remover"
)

// reportWait bounds the wait for the CRI to report a pin set through
// containerd's API (it learns of it by an event).
const reportWait = 10 * time.Second

// rollbackWait bounds the taking back of a pin the CRI did not report.
const rollbackWait = 10 * time.Second

// awaitReported waits for the CRI to report the image pinned, or not.
func (p *pinner) awaitReported(ctx context.Context, image string, pinned bool) error {
	deadline := time.Now().Add(reportWait)
	for {
		st, err := p.cri.ImageStatus(ctx, image)
		if err != nil {
			return err
		}
		if st == nil {
			if !pinned {
				return nil
			}
			return fmt.Errorf("%s left the node while it was pinned", image)
		}
		if st.GetPinned() == pinned {
			return nil
		}
		if time.Now().After(deadline) {
			if !pinned {
				return fmt.Errorf("%s still reports %s pinned %s after its label %s went", p.cri.Runtime(), image, reportWait, cri.LabelPinned)
			}
			return fmt.Errorf("%w: %s took the label %s=%s, but its CRI does not report the image pinned after %s: the kubelet would collect it",
				errUnsupported, p.cri.Runtime(), cri.LabelPinned, cri.PinnedValue, reportWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rollback takes back the labels a pin set when the CRI did not report it
// (cause), so that nothing claims a pin the kubelet does not honour. It runs
// on a context of its own: the command's may be what ran out, and a
// rollback on it would leave the labels. The pin is unsupported only where
// the runtime proved it cannot pin (errUnsupported) and the labels are
// gone; otherwise it failed, saying whether the pin may stay.
func (p *pinner) rollback(ctx context.Context, recs []*imagesapi.Image, cause error) remover.Result {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackWait)
	defer cancel()
	for _, rec := range recs {
		if _, err := p.unpinRecord(ctx, rec); err != nil {
			return failed(fmt.Errorf("%w; taking the pin back failed, so it may stay set: %w", cause, err))
		}
	}
	if errors.Is(cause, errUnsupported) {
		return remover.Result{Outcome: cri.Unsupported, Message: cause.Error()}
	}
	return failed(cause)
}
