package pinner

import (
	"context"
	"maps"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/remover"
	"kubefledged.io/kube-fledged/test/framework"
)

// TestConcurrentPinAndUnpinKeepThePin: a command reads a record, then
// writes the labels it changes; cache A's unpin and cache B's pin of one
// image can each read before the other writes. Each interleaving is driven
// by hand (a command's read, the other command whole, then the first's
// write): whichever order, the image ends pinned for B, the pin label there
// and reported by the CRI.
func TestConcurrentPinAndUnpinKeepThePin(t *testing.T) {
	framework.EachContainerd(t, func(t *testing.T, ctx context.Context, reg *framework.Registry, ctd *framework.Containerd) {
		cases := []struct {
			name string
			// race runs the interleaving once A's pin is set, and
			// returns the outcome of the command that wrote last.
			race func(a, b *pinner, image string) remover.Result
			want remover.Result
		}{{
			name: "A's unpin writes on a read from before B's pin",
			race: func(a, b *pinner, image string) remover.Result {
				recs := mustRecords(t, ctx, a, image)
				if got := b.pin(ctx, image); got.Outcome != cri.Pinned {
					t.Fatalf("B's pin: %+v", got)
				}
				return a.unpinRecords(ctx, image, recs)
			},
			want: remover.Result{Outcome: cri.Unpinned, Message: "it stays pinned: pinned for ImageCache team/b"},
		}, {
			name: "B's pin writes on a read from before A's unpin",
			race: func(a, b *pinner, image string) remover.Result {
				st, err := b.cri.ImageStatus(ctx, image)
				if err != nil {
					t.Fatal(err)
				}
				recs := mustRecords(t, ctx, b, image)
				if got := a.unpin(ctx, image); got.Outcome != cri.Unpinned || got.Message != "" {
					t.Fatalf("A's unpin: %+v", got)
				}
				return b.pinRecords(ctx, image, st, recs)
			},
			want: remover.Result{Outcome: cri.Pinned},
		}}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				image := reg.Host + "/test/race:v" + string(rune('1'+i))
				framework.PushAndPull(t, ctx, ctd, map[string]v1.Image{image: framework.SmallImage(t, "f.txt", image)})
				a := newTestPinner(t, ctx, ctd, "uid-a", "team/a")
				b := newTestPinner(t, ctx, ctd, "uid-b", "team/b")
				skipWithoutReportedPins(t, a)
				if got := a.pin(ctx, image); got.Outcome != cri.Pinned {
					t.Fatalf("A's pin: %+v", got)
				}
				if got := tc.race(a, b, image); got != tc.want {
					t.Errorf("the last write's outcome: %+v, want %+v", got, tc.want)
				}
				want := map[string]string{cri.LabelPinned: cri.PinnedValue, cri.LabelPinnedByPrefix + "uid-b": "team/b"}
				if got := pinLabels(labelsOf(t, ctx, a, image)); !maps.Equal(got, want) {
					t.Errorf("labels at the end: %v, want %v", got, want)
				}
				// The CRI learns of a label by an event.
				err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, reportWait, true, func(context.Context) (bool, error) {
					return reportsPinned(t, ctx, a, image), nil
				})
				if err != nil {
					t.Errorf("the CRI does not report %s pinned: %v", image, err)
				}
			})
		}
	})
}
