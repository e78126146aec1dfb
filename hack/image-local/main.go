// Command image-local builds kube-fledged's three images without Docker and
// pushes them to a registry (plain HTTP allowed, for a local registry):
//
//   - the controller (fledged; it holds the helper and the CRI remover too);
//   - the helper the pull Jobs' init container installs (fledged-helper
//     alone, a few MB: the image every node that warms pulls);
//   - the CRI remover the delete Jobs run (fledged-cri alone).
//
// Each is one layer of static binaries, cross-compiled here for each
// platform asked, and pushed as an OCI image index when there are several.
// `make image-local` runs it.
//
//	go run ./hack/image-local --image 127.0.0.1:5000/kube-fledged:dev [--platforms linux/amd64,linux/arm64]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"kubefledged.io/kube-fledged/pkg/imagebuild"
)

// component is one of the images: its binaries and entrypoint, and other
// names of them.
type component struct {
	suffix, title, description string
	binaries                   []string
	links                      map[string]string
}

var components = []component{
	// The controller also answers to upstream kube-fledged's command, so
	// that a Deployment kept from upstream's manifests runs it with its
	// command and arguments.
	{"", "kube-fledged", "Caches container images on Kubernetes nodes", []string{"fledged", "fledged-helper", "fledged-cri"},
		map[string]string{"/opt/bin/kubefledged-controller": "/fledged"}},
	{"-helper", "kube-fledged-helper", "kube-fledged's pull helper, which the pull Jobs install in their pods", []string{"fledged-helper"}, nil},
	{"-cri", "kube-fledged-cri", "kube-fledged's CRI tool, which the delete and pin Jobs run", []string{"fledged-cri"}, nil},
}

func main() {
	image := flag.String("image", "", "where to push the controller's image, such as 127.0.0.1:5000/kube-fledged:dev")
	helper := flag.String("helper-image", "", "where to push the helper image (default: the controller's repository with -helper, same tag)")
	criImage := flag.String("cri-image", "", "where to push the CRI remover image (default: the controller's repository with -cri, same tag)")
	platforms := flag.String("platforms", "linux/"+runtime.GOARCH, "the platforms to build, comma-separated (linux/amd64, linux/arm64, ...)")
	out := flag.String("out", "_output/bin", "folder for the cross-compiled binaries (one sub-folder per platform)")
	version := flag.String("version", "dev", "the version: stamped into the binaries (--version) and the image labels")
	revision := flag.String("revision", "unknown", "the VCS revision: stamped into the binaries and the image labels")
	insecure := flag.Bool("insecure", true, "allow a plain-HTTP registry")
	digests := flag.String("digests", "", "a file to write the pushed images into, one REPOSITORY:TAG@DIGEST a line, controller, helper, CRI")
	flag.Parse()
	if *image == "" || strings.Contains(*image, "@") {
		fail("--image is required, as REPOSITORY[:TAG] (the digest is the build's)")
	}
	refs := []string{*image, *helper, *criImage}
	for i, c := range components[1:] {
		if refs[i+1] == "" {
			refs[i+1] = sibling(*image, c.suffix)
		}
	}
	var archs []string
	for _, p := range strings.Split(*platforms, ",") {
		goos, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok || goos != "linux" || arch == "" {
			fail(fmt.Sprintf("--platforms: %q is not linux/ARCH", p))
		}
		archs = append(archs, arch)
	}
	bins := map[string]string{}
	for _, arch := range archs {
		dir := filepath.Join(*out, "linux_"+arch)
		if err := build(dir, arch, *version, *revision); err != nil {
			fail(err.Error())
		}
		bins[arch] = dir
	}
	var opts []name.Option
	if *insecure {
		opts = append(opts, name.Insecure)
	}
	var pushed strings.Builder
	for i, c := range components {
		ref, err := name.ParseReference(refs[i], opts...)
		if err != nil {
			fail(err.Error())
		}
		digest, err := push(ref, c, archs, bins, *version, *revision)
		if err != nil {
			fail(fmt.Sprintf("pushing %s: %v", ref, err))
		}
		fmt.Printf("pushed %s@%s (%s)\n", ref.Context().Name(), digest, strings.Join(archs, ", "))
		fmt.Fprintf(&pushed, "%s@%s\n", refs[i], digest)
	}
	if *digests != "" {
		if err := os.WriteFile(*digests, []byte(pushed.String()), 0o644); err != nil {
			fail(err.Error())
		}
	}
}

// sibling is the controller's image reference with suffix added to its
// repository, as make deploy and the chart name them:
// 127.0.0.1:5000/kube-fledged:dev -> 127.0.0.1:5000/kube-fledged-helper:dev.
func sibling(image, suffix string) string {
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[:i] + suffix + image[i:]
	}
	return image + suffix
}

// build cross-compiles the three static binaries for linux/arch into dir,
// stamped with the version and revision.
func build(dir, arch, version, revision string) error {
	ldflags := "-s -w -X kubefledged.io/kube-fledged/pkg/version.Version=" + version +
		" -X kubefledged.io/kube-fledged/pkg/version.Revision=" + revision
	// No VCS stamp: the revision is in the ldflags, and git's view of the
	// tree (an untracked file) would change the digests of one commit.
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", dir+"/", "./cmd/fledged", "./cmd/fledged-helper", "./cmd/fledged-cri")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building the binaries for linux/%s: %w", arch, err)
	}
	return nil
}

// push builds a component's image for each architecture and pushes it, as
// an index when there is more than one; it returns the digest pushed.
func push(ref name.Reference, c component, archs []string, bins map[string]string, version, revision string) (v1.Hash, error) {
	var imgs []v1.Image
	for _, arch := range archs {
		files := map[string]string{}
		for _, b := range c.binaries {
			files["/"+b] = filepath.Join(bins[arch], b)
		}
		img, err := imagebuild.Build(imagebuild.Options{
			Files:      files,
			Links:      c.links,
			Entrypoint: []string{"/" + c.binaries[0]},
			Arch:       arch,
			Labels: map[string]string{
				"org.opencontainers.image.title":       c.title,
				"org.opencontainers.image.description": c.description,
				"org.opencontainers.image.licenses":    "Apache-2.0",
				"org.opencontainers.image.version":     version,
				"org.opencontainers.image.revision":    revision,
			},
			Created: time.Unix(0, 0).UTC(),
		})
		if err != nil {
			return v1.Hash{}, err
		}
		imgs = append(imgs, img)
	}
	if len(imgs) == 1 {
		if err := remote.Write(ref, imgs[0]); err != nil {
			return v1.Hash{}, err
		}
		return imgs[0].Digest()
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for i, img := range imgs {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "linux", Architecture: archs[i]}}})
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		return v1.Hash{}, err
	}
	return idx.Digest()
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "image-local: "+msg)
	os.Exit(1)
}
