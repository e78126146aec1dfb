// Package image checks the image `make image-local` builds: pushed to a real
// local registry (Debian's docker-registry), then read back from it.
package image

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kubefledged.io/kube-fledged/pkg/imagebuild"
	"kubefledged.io/kube-fledged/test/framework"
)

func TestImageLocal(t *testing.T) {
	framework.RequireRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	reg, err := framework.StartRegistry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Stop()

	image := reg.Host + "/kube-fledged:test"
	out, err := framework.Command(ctx, "make", "--no-print-directory", "image-local", "IMAGE_LOCAL="+image).CombinedOutput()
	if err != nil {
		t.Fatalf("make image-local: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "pushed "+reg.Host+"/kube-fledged@sha256:") {
		t.Errorf("make image-local said:\n%s", out)
	}

	ref, err := name.ParseReference(image, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("reading the image back from the registry: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != imagebuild.NonRootUser || !strings.HasPrefix(cf.Config.User, "65532") {
		t.Errorf("user %q, want a non-root user", cf.Config.User)
	}
	if diff := cmp.Diff([]string{"/fledged"}, cf.Config.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if cf.Config.Labels["org.opencontainers.image.title"] != "kube-fledged" || cf.Config.Labels["org.opencontainers.image.licenses"] != "Apache-2.0" {
		t.Errorf("labels %v", cf.Config.Labels)
	}

	// The files: both binaries, executable, and the helper really runs.
	dir := t.TempDir()
	modes := map[string]int64{}
	tr := tar.NewReader(mutate.Extract(img))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		modes[hdr.Name] = hdr.Mode
		if hdr.Name == "fledged-helper" {
			f, err := os.OpenFile(filepath.Join(dir, "fledged-helper"), os.O_CREATE|os.O_WRONLY, 0o755)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	if diff := cmp.Diff(map[string]int64{"fledged": 0o755, "fledged-helper": 0o755, "fledged-cri": 0o755}, modes); diff != "" {
		t.Errorf("files in the image (-want +got):\n%s", diff)
	}
	outHelper, err := exec.Command(filepath.Join(dir, "fledged-helper"), "pulled", "x:1").CombinedOutput()
	if err != nil || !strings.Contains(string(outHelper), "image x:1 is cached") {
		t.Errorf("the image's helper: %v: %s", err, outHelper)
	}
}
