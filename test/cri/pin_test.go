package cri

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/test/framework"
)

// TestPinAgainstContainerd: fledged-cri pin labels the image so that the
// CRI reports it pinned (what the kubelet's image garbage collection
// skips); two caches pin one image, and it stays pinned until the last
// unpins it; a pin an operator set before stays when the caches' go; an
// image not on the node is reported absent. A containerd whose CRI does not
// report the label is reported unsupported, and keeps no label of it.
func TestPinAgainstContainerd(t *testing.T) { framework.EachContainerd(t, pinAgainstContainerd) }

func pinAgainstContainerd(t *testing.T, ctx context.Context, reg *framework.Registry, ctd *framework.Containerd) {
	ours := reg.Host + "/test/pinned:v1"
	operators := reg.Host + "/test/operator-pinned:v1"
	client := framework.PushAndPull(t, ctx, ctd, map[string]v1.Image{
		ours: framework.SmallImage(t, "f.txt", "pinned by caches\n"), operators: framework.SmallImage(t, "f.txt", "pinned by an operator\n")})
	bin := buildRemover(t)
	termLog := filepath.Join(t.TempDir(), "termination-log")
	run := func(args ...string) string {
		t.Helper()
		args = append(args[:1:1], append([]string{"--socket", ctd.Socket, "--termination-log", termLog}, args[1:]...)...)
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("fledged-cri %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	pinned := func(name string) bool {
		t.Helper()
		st, err := client.ImageStatus(ctx, name)
		if err != nil || st == nil {
			t.Fatalf("status of %s: %v, err %v", name, st, err)
		}
		return st.GetPinned()
	}
	if pinned(ours) {
		t.Fatalf("%s is pinned before any pin", ours)
	}

	out := run("pin", "--cache", "uid-a", "--cache-name", "team/a", ours)
	if strings.HasPrefix(out, "unsupported: ") {
		// Only a containerd 1.x may not report pins through its CRI.
		if !strings.HasPrefix(client.Runtime(), "containerd://1.") {
			t.Fatalf("%s: %s", client.Runtime(), out)
		}
		t.Logf("containerd-1: %s", out)
		if pinned(ours) || len(labelsOf(t, ctx, ctd.Socket, ours)) != len(withoutPins(labelsOf(t, ctx, ctd.Socket, ours))) {
			t.Errorf("an unsupported pin left the image pinned or labelled: %v", labelsOf(t, ctx, ctd.Socket, ours))
		}
		return
	}
	if out != "pinned: "+ours || !pinned(ours) {
		t.Fatalf("first pin: %q, CRI pinned %v", out, pinned(ours))
	}
	if data, _ := os.ReadFile(termLog); string(data) != "outcomes p" {
		t.Errorf("termination log %q, want %q", data, "outcomes p")
	}
	if l := labelsOf(t, ctx, ctd.Socket, ours); l[cri.LabelPinnedByPrefix+"uid-a"] != "team/a" || l[cri.LabelPinned] != cri.PinnedValue {
		t.Errorf("labels after the pin: %v", l)
	}
	if out := run("pin", "--cache", "uid-b", "--cache-name", "team/b", ours); out != "pinned: "+ours {
		t.Errorf("second cache's pin: %q", out)
	}
	if out := run("unpin", "--cache", "uid-a", ours); out != "unpinned: "+ours+": it stays pinned: pinned for ImageCache team/b" || !pinned(ours) {
		t.Errorf("first unpin: %q, CRI pinned %v; want it pinned for team/b", out, pinned(ours))
	}
	if out := run("unpin", "--cache", "uid-b", ours); out != "unpinned: "+ours || pinned(ours) {
		t.Errorf("last unpin: %q, CRI pinned %v; want it unpinned", out, pinned(ours))
	}
	if l := labelsOf(t, ctx, ctd.Socket, ours); len(withoutPins(l)) != len(l) {
		t.Errorf("labels after the last unpin: %v; want none of the pins'", l)
	}

	// An operator's pin, set before any cache's, stays.
	setLabel(t, ctx, ctd.Socket, operators, cri.LabelPinned, cri.PinnedValue)
	// The CRI learns of a label by an event: wait for it, as the pinner does.
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) { return pinned(operators), nil }); err != nil {
		t.Fatalf("the operator's pin of %s is not reported: %v", operators, err)
	}
	if out := run("pin", "--cache", "uid-a", "--cache-name", "team/a", operators); out != "pinned: "+operators {
		t.Errorf("pin of an operator's pinned image: %q", out)
	}
	if l := labelsOf(t, ctx, ctd.Socket, operators); l[cri.LabelPinPredates] == "" {
		t.Errorf("labels %v: want the pin marked as predating the caches'", l)
	}
	if out := run("unpin", "--cache", "uid-a", operators); out != "unpinned: "+operators+": it stays pinned: it was pinned before a cache pinned it" || !pinned(operators) {
		t.Errorf("unpin of an operator's pinned image: %q, CRI pinned %v; want it still pinned", out, pinned(operators))
	}
	if l := labelsOf(t, ctx, ctd.Socket, operators); l[cri.LabelPinned] != cri.PinnedValue || len(l) != len(withoutPins(l))+1 {
		t.Errorf("labels after the unpin: %v; want the operator's pin alone", l)
	}
	// A cache that never pinned it takes nothing away either.
	if out := run("unpin", "--cache", "uid-c", operators); !strings.Contains(out, "pinned by something other than kube-fledged") || !pinned(operators) {
		t.Errorf("unpin by a cache that did not pin it: %q, CRI pinned %v", out, pinned(operators))
	}

	absent := reg.Host + "/test/never-pulled:v1"
	if out := run("pin", "--cache", "uid-a", absent); out != "already absent: "+absent+": the image is not on this node" {
		t.Errorf("pin of an absent image: %q", out)
	}
	if data, _ := os.ReadFile(termLog); !strings.HasPrefix(string(data), "outcomes a\n0: ") {
		t.Errorf("termination log %q", data)
	}
}

// TestPinBudgetAgainstContainerd: an image that would take the node's pinned
// images past the budget (a share of the image filesystem, here a 1 MiB
// tmpfs) is refused with the sizes, and stays, unpinned; a smaller one fits.
func TestPinBudgetAgainstContainerd(t *testing.T) {
	framework.EachContainerd(t, pinBudgetAgainstContainerd)
}

func pinBudgetAgainstContainerd(t *testing.T, ctx context.Context, reg *framework.Registry, ctd *framework.Containerd) {
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mounting a 1 MiB tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, 0) })

	big, small := reg.Host+"/test/big:v1", reg.Host+"/test/small-pin:v1"
	noise := make([]byte, 768<<10) // incompressible: its layer is as large
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	layer, err := crane.Layer(map[string][]byte{"noise": noise})
	if err != nil {
		t.Fatal(err)
	}
	bigImg, err := mutate.AppendLayers(framework.SmallImage(t, "f.txt", "big\n"), layer)
	if err != nil {
		t.Fatal(err)
	}
	client := framework.PushAndPull(t, ctx, ctd, map[string]v1.Image{big: bigImg, small: framework.SmallImage(t, "f.txt", "small\n")})
	bin := buildRemover(t)
	termLog := filepath.Join(t.TempDir(), "termination-log")
	out, err := exec.Command(bin, "pin", "--socket", ctd.Socket, "--termination-log", termLog,
		"--cache", "uid-a", "--budget", "50", "--root", root, big, small).CombinedOutput()
	if err != nil {
		t.Fatalf("pin: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	smallPinned := "pinned: " + small
	if strings.HasPrefix(client.Runtime(), "containerd://1.") && len(lines) == 2 && strings.HasPrefix(lines[1], "unsupported: ") {
		// containerd 1.6's CRI does not report pins: the budget is
		// still checked first.
		smallPinned = lines[1]
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "over budget: "+big+": pinning it (") ||
		!strings.Contains(lines[0], "over the budget of 512 KiB (50% of the 1.0 MiB image filesystem)") || lines[1] != smallPinned {
		t.Errorf("pin within a budget of 512 KiB: %q; want %s over budget, %s pinned", out, big, small)
	}
	if smallPinned != "pinned: "+small {
		return
	}
	if data, _ := os.ReadFile(termLog); !strings.HasPrefix(string(data), "outcomes bp\n0: pinning it (") {
		t.Errorf("termination log %q", data)
	}
	for name, want := range map[string]bool{big: false, small: true} {
		st, err := client.ImageStatus(ctx, name)
		if err != nil || st == nil || st.GetPinned() != want {
			t.Errorf("%s: status %v, err %v; want it there, pinned %v", name, st, err, want)
		}
	}
}

// labelsOf returns the labels of containerd's record of an image.
func labelsOf(t *testing.T, ctx context.Context, socket, name string) map[string]string {
	t.Helper()
	resp, err := imagesClient(t, socket).Get(k8sNamespace(ctx), &imagesapi.GetImageRequest{Name: name})
	if err != nil {
		t.Fatalf("containerd's record of %s: %v", name, err)
	}
	return resp.GetImage().GetLabels()
}

// setLabel sets one label of containerd's record of an image, as
// `ctr -n k8s.io images label` does.
func setLabel(t *testing.T, ctx context.Context, socket, name, key, value string) {
	t.Helper()
	c := imagesClient(t, socket)
	resp, err := c.Get(k8sNamespace(ctx), &imagesapi.GetImageRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	img := resp.GetImage()
	if img.Labels == nil {
		img.Labels = map[string]string{}
	}
	img.Labels[key] = value
	if _, err := c.Update(k8sNamespace(ctx), &imagesapi.UpdateImageRequest{Image: img, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels." + key}}}); err != nil {
		t.Fatal(err)
	}
}

func imagesClient(t *testing.T, socket string) imagesapi.ImagesClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return imagesapi.NewImagesClient(conn)
}

func k8sNamespace(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "containerd-namespace", "k8s.io")
}

// withoutPins returns the labels other than the pins'.
func withoutPins(labels map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		if k != cri.LabelPinned && k != cri.LabelPinPredates && !strings.HasPrefix(k, cri.LabelPinnedByPrefix) {
			out[k] = v
		}
	}
	return out
}

// statusOf is the runtime's status of an image it must have.
func statusOf(t *testing.T, ctx context.Context, client *cri.Client, image string) *runtimeapi.Image {
	t.Helper()
	st, err := client.ImageStatus(ctx, image)
	if err != nil || st == nil {
		t.Fatalf("status of %s: %v, err %v", image, st, err)
	}
	return st
}
