package cri

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/test/framework"
)

// TestPullResetsTheLabels settles what a pull through the CRI does to the
// labels of the record of the name it pulls, which the controller's
// re-pin after a pull rests on: on containerd 1.6, 2.3 and 2.4 alike, the
// record keeps only the CRI's own label, whether the pull moved the tag or
// found the same content. The pin goes with the other labels: the image the
// tag names is not pinned after the pull, nor is the one it left, until the
// tag is pinned again.
func TestPullResetsTheLabels(t *testing.T) { framework.EachContainerd(t, pullResetsTheLabels) }

func pullResetsTheLabels(t *testing.T, ctx context.Context, reg *framework.Registry, ctd *framework.Containerd) {
	tag := reg.Host + "/test/moving:stable"
	client := framework.PushAndPull(t, ctx, ctd, map[string]v1.Image{tag: framework.SmallImage(t, "f.txt", "first\n")})
	reportsPins := !strings.HasPrefix(client.Runtime(), "containerd://1.6")
	// The labels a pin sets, and one of someone else's.
	pin := func() {
		t.Helper()
		for k, v := range map[string]string{cri.LabelPinned: cri.PinnedValue, cri.LabelPinnedByPrefix + "uid-a": "team/a", "example.com/note": "kept?"} {
			setLabel(t, ctx, ctd.Socket, tag, k, v)
		}
		if !reportsPins {
			return // containerd 1.6's CRI does not report pins
		}
		// The CRI learns of a label by an event.
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			return statusOf(t, ctx, client, tag).GetPinned(), nil
		}); err != nil {
			t.Fatalf("the pin of %s is not reported: %v", tag, err)
		}
	}
	criOwn := map[string]string{"io.cri-containerd.image": "managed"}
	pull := func(what string) {
		t.Helper()
		if _, err := client.PullImage(ctx, tag); err != nil {
			t.Fatal(err)
		}
		if got := labelsOf(t, ctx, ctd.Socket, tag); !maps.Equal(got, criOwn) {
			t.Errorf("%s: the labels of %s are %v, want the CRI's own alone, %v", what, tag, got, criOwn)
		}
		if st := statusOf(t, ctx, client, tag); st.GetPinned() {
			t.Errorf("%s: the CRI reports %s (%s) pinned; want its pin gone with the labels", what, tag, st.GetId())
		}
	}

	first := statusOf(t, ctx, client, tag)
	pin()
	pull("a pull of the same content")
	if st := statusOf(t, ctx, client, tag); st.GetId() != first.GetId() {
		t.Fatalf("the pull of the same content changed the image: %s, was %s", st.GetId(), first.GetId())
	}

	pin()
	if err := crane.Push(framework.SmallImage(t, "f.txt", "second\n"), tag, crane.Insecure); err != nil {
		t.Fatal(err)
	}
	pull("a pull that moves the tag")
	if st := statusOf(t, ctx, client, tag); st.GetId() == first.GetId() {
		t.Fatalf("the tag did not move: still %s", st.GetId())
	}
	if old, err := client.ImageStatus(ctx, first.GetId()); err != nil || old == nil || old.GetPinned() {
		t.Errorf("the image the tag left: %v, err %v; want it there, unpinned", old, err)
	}
}
