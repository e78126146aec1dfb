// Package cri checks the project's CRI client and the fledged-cri remover
// against a real containerd pulling from a real local registry.
package cri

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"

	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/test/framework"
)

func TestRemoverAgainstContainerd(t *testing.T) {
	framework.EachContainerd(t, removerAgainstContainerd)
}

func removerAgainstContainerd(t *testing.T, ctx context.Context, reg *framework.Registry, ctd *framework.Containerd) {
	// A small image, pushed without Docker.
	img := framework.SmallImage(t, "hello.txt", "kube-fledged test image\n")
	image := reg.Host + "/test/small:v1"
	if err := crane.Push(img, image, crane.Insecure); err != nil {
		t.Fatalf("pushing %s: %v", image, err)
	}

	client, err := cri.Dial(ctx, ctd.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// The runtime as a node reports it, which picks the delete Jobs' socket.
	t.Logf("CRI runtime: %s", client.Runtime())
	if sock, err := cri.SocketForRuntime(client.Runtime()); err != nil || sock != "/run/containerd/containerd.sock" {
		t.Errorf("a node reporting %s gets socket %q (%v), want containerd's", client.Runtime(), sock, err)
	}
	if _, err := client.PullImage(ctx, image); err != nil {
		t.Fatal(err)
	}
	got, err := client.ImageStatus(ctx, image)
	if err != nil || got == nil {
		t.Fatalf("after the pull: image %v, err %v", got, err)
	}
	list, err := client.ListImages(ctx)
	if err != nil || len(list) == 0 {
		t.Fatalf("list: %d images, err %v", len(list), err)
	}

	// The remover command, as the delete Job runs it.
	bin := buildRemover(t)
	termLog := filepath.Join(t.TempDir(), "termination-log")
	run := func(socket string, images ...string) (string, int) {
		args := append([]string{"rmi", "--socket", socket, "--termination-log", termLog}, images...)
		out, err := exec.Command(bin, args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := run(ctd.Socket, image)
	if code != 0 || strings.TrimSpace(out) != "removed: "+image {
		t.Errorf("first removal: exit %d, output %q", code, out)
	}
	if got, err := client.ImageStatus(ctx, image); err != nil || got != nil {
		t.Errorf("after the removal: image %v, err %v; want it gone", got, err)
	}
	// The termination message is the compact summary: one letter per image.
	if data, _ := os.ReadFile(termLog); string(data) != "outcomes r" {
		t.Errorf("termination log %q, want %q", data, "outcomes r")
	}
	out, code = run(ctd.Socket, image)
	if code != 0 || strings.TrimSpace(out) != "already absent: "+image {
		t.Errorf("second removal: exit %d, output %q", code, out)
	}
	missing := filepath.Join(t.TempDir(), "no-such.sock")
	out, code = run(missing, image)
	if code != 1 || !strings.Contains(out, "failed: "+image) || !strings.Contains(out, missing) {
		t.Errorf("wrong socket: exit %d, output %q; want a failure naming %s", code, out, missing)
	}
	if data, _ := os.ReadFile(termLog); !strings.HasPrefix(string(data), "outcomes f\n0: ") || !strings.Contains(string(data), missing) {
		t.Errorf("termination log %q: want the failure of image 0, naming %s", data, missing)
	}
}

// TestRemoverKeepsAnImageWantedUnderAnotherName: containerd removes an
// image, not a name: removing one name of an image pulled under two takes
// both. Told to keep the other name (--keep), the remover leaves the image
// and says so; without it, both names go.
func TestRemoverKeepsAnImageWantedUnderAnotherName(t *testing.T) {
	framework.EachContainerd(t, removerKeepsAnImageWantedUnderAnotherName)
}

func removerKeepsAnImageWantedUnderAnotherName(t *testing.T, ctx context.Context, reg *framework.Registry, ctd *framework.Containerd) {
	img := framework.SmallImage(t, "shared.txt", "one image, two names\n")
	a, b := reg.Host+"/team-a/shared:v1", reg.Host+"/mirror/shared:v1"
	for _, name := range []string{a, b} {
		if err := crane.Push(img, name, crane.Insecure); err != nil {
			t.Fatalf("pushing %s: %v", name, err)
		}
	}
	client, err := cri.Dial(ctx, ctd.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pullBoth := func() {
		t.Helper()
		for _, name := range []string{a, b} {
			if _, err := client.PullImage(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	pullBoth()
	bin := buildRemover(t)
	termLog := filepath.Join(t.TempDir(), "termination-log")
	out, err := exec.Command(bin, "rmi", "--socket", ctd.Socket, "--termination-log", termLog, "--keep", b, a).CombinedOutput()
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(out)), "kept: "+a+": it is also "+b) {
		t.Errorf("with --keep: err %v, output %q", err, out)
	}
	if data, _ := os.ReadFile(termLog); !strings.HasPrefix(string(data), "outcomes k\n0: it is also "+b) {
		t.Errorf("termination log %q", data)
	}
	for _, name := range []string{a, b} {
		if got, err := client.ImageStatus(ctx, name); err != nil || got == nil {
			t.Errorf("%s after the kept removal: %v, err %v; want it there", name, got, err)
		}
	}
	out, err = exec.Command(bin, "rmi", "--socket", ctd.Socket, "--termination-log", termLog, a).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "removed: "+a {
		t.Errorf("without --keep: err %v, output %q", err, out)
	}
	if got, err := client.ImageStatus(ctx, b); err != nil || got != nil {
		t.Errorf("%s after removing %s: %v, err %v; the runtime removes the image, with every name", b, a, got, err)
	}
}

// buildRemover builds the fledged-cri command the delete Jobs run.
func buildRemover(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fledged-cri")
	if out, err := exec.Command("go", "build", "-o", bin, "kubefledged.io/kube-fledged/cmd/fledged-cri").CombinedOutput(); err != nil {
		t.Fatalf("building fledged-cri: %v\n%s", err, out)
	}
	return bin
}
