package pinner

import (
	"context"
	"maps"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/remover"
	"kubefledged.io/kube-fledged/test/framework"
)

// TestUnpinOfAnImagePinnedUnderAnotherName: the CRI reports an image
// pinned while any of its names' records carries the pin label. An unpin of
// one name, whose own labels go, reports at once that the image stays
// pinned under the other name (it does not wait for the CRI to report it
// unpinned, which it never will), and leaves the other name's pin.
func TestUnpinOfAnImagePinnedUnderAnotherName(t *testing.T) {
	framework.EachContainerd(t, func(t *testing.T, ctx context.Context, reg *framework.Registry, ctd *framework.Containerd) {
		cases := []struct {
			name string
			// pinOther pins the second name, b being another cache.
			pinOther func(t *testing.T, b *pinner, other string)
			want     map[string]string // the other name's pin labels at the end
		}{{
			name: "another cache pins the other name",
			pinOther: func(t *testing.T, b *pinner, other string) {
				if got := b.pin(ctx, other); got.Outcome != cri.Pinned {
					t.Fatalf("B's pin of %s: %+v", other, got)
				}
			},
			want: map[string]string{cri.LabelPinned: cri.PinnedValue, cri.LabelPinnedByPrefix + "uid-b": "team/b"},
		}, {
			name: "an operator pins the other name",
			pinOther: func(t *testing.T, b *pinner, other string) {
				// As `ctr -n k8s.io images label` does.
				if err := b.relabel(ctx, mustRecords(t, ctx, b, other)[0], map[string]string{cri.LabelPinned: cri.PinnedValue}); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{cri.LabelPinned: cri.PinnedValue},
		}}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				content := framework.SmallImage(t, "f.txt", tc.name)
				repo := reg.Host + "/test/two-names-" + string(rune('a'+i))
				ours, other := repo+":ours", repo+":other"
				framework.PushAndPull(t, ctx, ctd, map[string]v1.Image{ours: content, other: content})
				a := newTestPinner(t, ctx, ctd, "uid-a", "team/a")
				b := newTestPinner(t, ctx, ctd, "uid-b", "team/b")
				skipWithoutReportedPins(t, a)
				if got := a.pin(ctx, ours); got.Outcome != cri.Pinned {
					t.Fatalf("A's pin of %s: %+v", ours, got)
				}
				tc.pinOther(t, b, other)

				start := time.Now()
				got := a.unpin(ctx, ours)
				took := time.Since(start)
				want := remover.Result{Outcome: cri.Unpinned, Message: "it stays pinned: pinned under another name, " + other}
				if got != want {
					t.Errorf("unpin of %s: %+v, want %+v", ours, got, want)
				}
				if took >= reportWait {
					t.Errorf("the unpin took %s: it waited for the CRI (%s at most)", took, reportWait)
				}
				if l := pinLabels(labelsOf(t, ctx, a, ours)); len(l) != 0 {
					t.Errorf("%s's labels after its unpin: %v; want none of the pins'", ours, l)
				}
				if l := pinLabels(labelsOf(t, ctx, a, other)); !maps.Equal(l, tc.want) {
					t.Errorf("%s's labels after the unpin of %s: %v, want %v", other, ours, l, tc.want)
				}
				if !reportsPinned(t, ctx, a, other) {
					t.Errorf("the CRI does not report %s pinned", other)
				}
			})
		}
	})
}
