package pinner

import (
	"context"
	"strings"
	"testing"

	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"google.golang.org/grpc/metadata"

	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/test/framework"
)

// The pinner's tests run against a real containerd (framework.EachContainerd),
// calling the pinner's steps directly where a test must interleave another
// cache's writes with them.

// newTestPinner is the pinner of one cache on ctd, closed when the test ends.
func newTestPinner(t *testing.T, ctx context.Context, ctd *framework.Containerd, uid, owner string) *pinner {
	t.Helper()
	p, err := dial(ctx, ctd.Socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	p.uid, p.owner = uid, owner
	return p
}

// labelsOf reads the labels of containerd's record of name.
func labelsOf(t *testing.T, ctx context.Context, p *pinner, name string) map[string]string {
	t.Helper()
	ctx = metadata.AppendToOutgoingContext(ctx, "containerd-namespace", containerdNamespace)
	resp, err := p.store.Get(ctx, &imagesapi.GetImageRequest{Name: name})
	if err != nil {
		t.Fatalf("containerd's record of %s: %v", name, err)
	}
	return resp.GetImage().GetLabels()
}

// pinLabels keeps the labels pins hold.
func pinLabels(labels map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		if k == cri.LabelPinned || k == cri.LabelPinPredates || len(pinnedBy(map[string]string{k: v})) == 1 {
			out[k] = v
		}
	}
	return out
}

// reportsPinned is whether the CRI reports image pinned.
func reportsPinned(t *testing.T, ctx context.Context, p *pinner, image string) bool {
	t.Helper()
	st, err := p.cri.ImageStatus(ctx, image)
	if err != nil || st == nil {
		t.Fatalf("the CRI's status of %s: %v, err %v", image, st, err)
	}
	return st.GetPinned()
}

// mustRecords is p.records, which must succeed with one record at least.
func mustRecords(t *testing.T, ctx context.Context, p *pinner, image string) []*imagesapi.Image {
	t.Helper()
	recs, err := p.records(ctx, image)
	if err != nil || len(recs) == 0 {
		t.Fatalf("records of %s: %v, err %v", image, recs, err)
	}
	return recs
}

// skipWithoutReportedPins skips t on containerd 1.6, whose CRI does not
// report pins (a pin there is unsupported).
func skipWithoutReportedPins(t *testing.T, p *pinner) {
	t.Helper()
	if strings.HasPrefix(p.cri.Runtime(), "containerd://1.6") {
		t.Skipf("%s's CRI does not report pins", p.cri.Runtime())
	}
}
