// Command image-local builds kube-fledged's image from the binaries in
// _output/bin, without Docker, and pushes it to a registry (plain HTTP allowed,
// for a local registry). `make image-local` runs it.
//
//	go run ./hack/image-local --image 127.0.0.1:5000/kube-fledged:dev
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kubefledged.io/kube-fledged/pkg/imagebuild"
)

func main() {
	image := flag.String("image", "", "where to push the image, such as 127.0.0.1:5000/kube-fledged:dev")
	bin := flag.String("bin", "_output/bin", "folder holding the fledged, fledged-helper and fledged-cri binaries")
	arch := flag.String("arch", runtime.GOARCH, "the binaries' architecture")
	version := flag.String("version", "dev", "the version label")
	insecure := flag.Bool("insecure", true, "allow a plain-HTTP registry")
	flag.Parse()
	if *image == "" {
		fmt.Fprintln(os.Stderr, "image-local: --image is required")
		os.Exit(2)
	}
	img, err := imagebuild.Build(imagebuild.Options{
		Files: map[string]string{
			"/fledged":        filepath.Join(*bin, "fledged"),
			"/fledged-helper": filepath.Join(*bin, "fledged-helper"),
			"/fledged-cri":    filepath.Join(*bin, "fledged-cri"),
		},
		Entrypoint: []string{"/fledged"},
		Arch:       *arch,
		Labels: map[string]string{
			"org.opencontainers.image.title":       "kube-fledged",
			"org.opencontainers.image.description": "Caches container images on Kubernetes nodes",
			"org.opencontainers.image.licenses":    "Apache-2.0",
			"org.opencontainers.image.version":     *version,
		},
		Created: time.Unix(0, 0).UTC(),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "image-local: %v\n", err)
		os.Exit(1)
	}
	var opts []name.Option
	if *insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(*image, opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "image-local: %v\n", err)
		os.Exit(1)
	}
	if err := remote.Write(ref, img); err != nil {
		fmt.Fprintf(os.Stderr, "image-local: pushing %s: %v\n", ref, err)
		os.Exit(1)
	}
	digest, _ := img.Digest()
	fmt.Printf("pushed %s@%s\n", ref.Context().Name(), digest)
}
