package framework

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"kubefledged.io/kube-fledged/pkg/cri"
)

// EachContainerd runs test, as a subtest named after the build, against
// each containerd of Containerds, each pulling from a registry of its own.
// It skips t without the registry or root.
func EachContainerd(t *testing.T, test func(t *testing.T, ctx context.Context, reg *Registry, ctd *Containerd)) {
	RequireRegistry(t)
	for _, build := range Containerds(t) {
		t.Run(build.Name, func(t *testing.T) {
			ctx, reg, ctd := startRuntime(t, build)
			test(t, ctx, reg, ctd)
		})
	}
}

// startRuntime starts a local registry and a containerd that pulls from it,
// both stopped when the test ends, and returns a context for the test.
func startRuntime(t *testing.T, build ContainerdBuild) (context.Context, *Registry, *Containerd) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	reg, err := StartRegistry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	ctd, err := StartContainerd(ctx, build, reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(ctd.LogTail(30))
		}
		ctd.Stop()
	})
	return ctx, reg, ctd
}

// SmallImage is an image of one small file, made without Docker.
func SmallImage(t testing.TB, name, content string) v1.Image {
	t.Helper()
	layer, err := crane.Layer(map[string][]byte{name: []byte(content)})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// PushAndPull pushes each image under its name, and pulls it through the
// runtime's CRI, whose client it returns (closed when the test ends).
func PushAndPull(t testing.TB, ctx context.Context, ctd *Containerd, imgs map[string]v1.Image) *cri.Client {
	t.Helper()
	client, err := cri.Dial(ctx, ctd.Socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	for name, img := range imgs {
		if err := crane.Push(img, name, crane.Insecure); err != nil {
			t.Fatalf("pushing %s: %v", name, err)
		}
		if _, err := client.PullImage(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	return client
}
