package pinner

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/remover"
	"kubefledged.io/kube-fledged/test/framework"
)

// TestPinOutOfTimeTakesItsLabelBack: a pin whose wait for the CRI to report
// it runs past the command's --timeout takes its labels back all the same
// (the rollback has time of its own), and fails: running out of time proves
// nothing about the runtime, so it is not reported unsupported. Only
// containerd 1.6, whose CRI never reports a pin, makes the wait run out.
func TestPinOutOfTimeTakesItsLabelBack(t *testing.T) {
	framework.EachContainerd(t, func(t *testing.T, ctx context.Context, reg *framework.Registry, ctd *framework.Containerd) {
		image := reg.Host + "/test/rollback:v1"
		client := framework.PushAndPull(t, ctx, ctd, map[string]v1.Image{image: framework.SmallImage(t, "f.txt", "rollback\n")})
		if !strings.HasPrefix(client.Runtime(), "containerd://1.") {
			t.Skipf("%s's CRI reports the pin: the wait does not run out", client.Runtime())
		}
		p := newTestPinner(t, ctx, ctd, "uid-a", "team/a")
		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		got := p.pin(short, image)
		if got.Outcome != cri.Failed || !strings.Contains(got.Message, context.DeadlineExceeded.Error()) {
			t.Errorf("pin past the timeout: %s: %s; want failed, out of time", got.Outcome, got.Message)
		}
		if l := pinLabels(labelsOf(t, ctx, p, image)); len(l) != 0 {
			t.Errorf("labels after the pin that ran out of time: %v; want none of the pins'", l)
		}
	})
}

// TestRollback: the rollback of a pin the CRI did not report takes the
// labels back even on a context that has run out, and reports the pin
// unsupported; a rollback that cannot reach containerd reports the pin
// failed, saying it may stay, never unsupported.
func TestRollback(t *testing.T) {
	framework.EachContainerd(t, func(t *testing.T, ctx context.Context, reg *framework.Registry, ctd *framework.Containerd) {
		image := reg.Host + "/test/rollback:v1"
		framework.PushAndPull(t, ctx, ctd, map[string]v1.Image{image: framework.SmallImage(t, "f.txt", "rollback\n")})
		p := newTestPinner(t, ctx, ctd, "uid-a", "team/a")
		unsupported := fmt.Errorf("%w: the CRI does not report it", errUnsupported)
		setPin := func() []*imagesapi.Image {
			t.Helper()
			recs, err := p.records(ctx, image)
			if err != nil || len(recs) != 1 {
				t.Fatalf("records of %s: %v, err %v", image, recs, err)
			}
			if err := p.relabel(ctx, recs[0], map[string]string{p.pinnedByKey(): p.owner, cri.LabelPinned: cri.PinnedValue}); err != nil {
				t.Fatal(err)
			}
			return recs
		}

		expired, cancel := context.WithCancel(ctx)
		cancel()
		got := p.rollback(expired, setPin(), unsupported)
		if want := (remover.Result{Outcome: cri.Unsupported, Message: unsupported.Error()}); got != want {
			t.Errorf("rollback on a context that ran out: %+v, want %+v", got, want)
		}
		if l := pinLabels(labelsOf(t, ctx, p, image)); len(l) != 0 {
			t.Errorf("labels after the rollback: %v; want none of the pins'", l)
		}

		recs := setPin()
		ctd.Stop()
		got = p.rollback(ctx, recs, unsupported)
		if got.Outcome != cri.Failed || !strings.HasPrefix(got.Message, unsupported.Error()+"; taking the pin back failed, so it may stay set: ") {
			t.Errorf("rollback without containerd: %s: %s; want failed, the pin maybe set", got.Outcome, got.Message)
		}
	})
}
