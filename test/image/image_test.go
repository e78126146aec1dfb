// Package image checks the images `make image-local` builds: pushed to a real
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
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kubefledged.io/kube-fledged/pkg/imagebuild"
	"kubefledged.io/kube-fledged/test/framework"
)

// The version and revision the test stamps the images with.
const testVersion, testRevision = "v0.0.0-image-test", "0123456789abcdef"

// TestImageLocal: make image-local pushes three images, each an index of
// linux/amd64 and linux/arm64 images: the controller (with every binary),
// the helper (fledged-helper alone, a few MB: the image every node that
// warms pulls) and the CRI remover (fledged-cri alone). Built twice, they
// have the same digests.
func TestImageLocal(t *testing.T) {
	framework.RequireRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	reg, err := framework.StartRegistry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Stop()

	image := reg.Host + "/kube-fledged:test"
	makeImages := func() string {
		out, err := framework.Command(ctx, "make", "--no-print-directory", "image-local", "IMAGE_LOCAL="+image,
			"PLATFORMS=linux/amd64,linux/arm64", "VERSION="+testVersion, "REVISION="+testRevision).CombinedOutput()
		if err != nil {
			t.Fatalf("make image-local: %v\n%s", err, out)
		}
		return string(out)
	}
	out := makeImages()
	for _, repo := range []string{"kube-fledged", "kube-fledged-helper", "kube-fledged-cri"} {
		if !strings.Contains(out, "pushed "+reg.Host+"/"+repo+"@sha256:") {
			t.Errorf("make image-local did not push %s; it said:\n%s", repo, out)
		}
	}
	if again := makeImages(); again != out {
		t.Errorf("built twice, the images differ:\n%s\n%s", out, again)
	}

	for _, c := range []struct {
		repo, title string
		files       []string
		maxBytes    int64
	}{
		// The controller also answers to upstream's command, a hard link.
		{"kube-fledged", "kube-fledged", []string{"fledged", "fledged-cri", "fledged-helper", "opt", "opt/bin", "opt/bin/kubefledged-controller"}, 0},
		{"kube-fledged-helper", "kube-fledged-helper", []string{"fledged-helper"}, 10 << 20},
		{"kube-fledged-cri", "kube-fledged-cri", []string{"fledged-cri"}, 40 << 20},
	} {
		t.Run(c.repo, func(t *testing.T) {
			ref, err := name.ParseReference(reg.Host+"/"+c.repo+":test", name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			idx, err := remote.Index(ref)
			if err != nil {
				t.Fatalf("reading the index back from the registry: %v", err)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			var platforms []string
			var host v1.Image
			for _, d := range im.Manifests {
				platforms = append(platforms, d.Platform.OS+"/"+d.Platform.Architecture)
				img, err := idx.Image(d.Digest)
				if err != nil {
					t.Fatal(err)
				}
				checkImage(t, img, c.title, c.files, d.Platform.Architecture, c.maxBytes)
				if d.Platform.Architecture == runtime.GOARCH {
					host = img
				}
			}
			sort.Strings(platforms)
			if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, platforms); diff != "" {
				t.Errorf("platforms (-want +got):\n%s", diff)
			}
			if host != nil && c.repo == "kube-fledged-helper" {
				runHelper(t, host)
			}
		})
	}
}

// checkImage checks one platform's image: its user, entrypoint, platform,
// labels, files (executable) and, when maxBytes is set, its size.
func checkImage(t *testing.T, img v1.Image, title string, files []string, arch string, maxBytes int64) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != imagebuild.NonRootUser || !strings.HasPrefix(cf.Config.User, "65532") {
		t.Errorf("%s: user %q, want a non-root user", arch, cf.Config.User)
	}
	if diff := cmp.Diff([]string{"/" + strings.TrimPrefix(title, "kube-")}, cf.Config.Entrypoint); title != "kube-fledged" && diff != "" {
		t.Errorf("%s: entrypoint (-want +got):\n%s", arch, diff)
	}
	if title == "kube-fledged" && !cmp.Equal([]string{"/fledged"}, cf.Config.Entrypoint) {
		t.Errorf("%s: entrypoint %v, want /fledged", arch, cf.Config.Entrypoint)
	}
	if cf.OS != "linux" || cf.Architecture != arch {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, arch)
	}
	if cf.Config.Labels["org.opencontainers.image.title"] != title || cf.Config.Labels["org.opencontainers.image.licenses"] != "Apache-2.0" ||
		cf.Config.Labels["org.opencontainers.image.version"] != testVersion || cf.Config.Labels["org.opencontainers.image.revision"] != testRevision {
		t.Errorf("%s: labels %v", arch, cf.Config.Labels)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Errorf("%s: %d layers (%v), want one", arch, len(layers), err)
	}
	var size int64
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		size += n
	}
	if maxBytes > 0 && size > maxBytes {
		t.Errorf("%s: %d bytes, over %d", arch, size, maxBytes)
	}
	t.Logf("%s/%s: %d bytes", title, arch, size)
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
	}
	want := map[string]int64{}
	for _, f := range files {
		want[f] = 0o755
	}
	if diff := cmp.Diff(want, modes); diff != "" {
		t.Errorf("%s: files in the image (-want +got):\n%s", arch, diff)
	}
}

// runHelper runs the helper of the host's image: it really works.
func runHelper(t *testing.T, img v1.Image) {
	t.Helper()
	dir := t.TempDir()
	tr := tar.NewReader(mutate.Extract(img))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name != "fledged-helper" {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, "fledged-helper"), os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	out, err := exec.Command(filepath.Join(dir, "fledged-helper"), "pulled", "x:1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "image x:1 is cached") {
		t.Errorf("the image's helper: %v: %s", err, out)
	}
	out, err = exec.Command(filepath.Join(dir, "fledged-helper"), "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "fledged-helper "+testVersion+" (revision "+testRevision+", go") {
		t.Errorf("the image's helper --version: %v: %s", err, out)
	}
}
