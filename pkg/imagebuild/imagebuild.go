// Package imagebuild builds kube-fledged's container image without a Docker
// engine: the static binaries as one layer on an empty base, with the same
// entrypoint, user and labels as the Dockerfile's image.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// NonRootUser is the image's user: no root, as in distroless' "nonroot".
const NonRootUser = "65532:65532"

// Options say what goes into the image.
type Options struct {
	// Files maps a path in the image (such as /fledged) to a file on disk.
	// Every file is made executable.
	Files map[string]string
	// Links maps a path in the image to a path in Files it is a hard link
	// to (another name for the same binary, at no cost in size).
	Links map[string]string
	// Entrypoint is the image's entrypoint.
	Entrypoint []string
	// Arch is the image's CPU architecture (GOARCH values); the OS is linux.
	Arch string
	// Labels are OCI labels on the image.
	Labels map[string]string
	// Created is the image's creation time (the zero time keeps builds reproducible).
	Created time.Time
}

// Build assembles the image.
func Build(o Options) (v1.Image, error) {
	layer, err := filesLayer(o.Files, o.Links, o.Created)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = o.Arch
	cf.Created = v1.Time{Time: o.Created}
	cf.Config.Entrypoint = o.Entrypoint
	cf.Config.User = NonRootUser
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/"}
	cf.Config.Labels = o.Labels
	return mutate.ConfigFile(img, cf)
}

// filesLayer makes a layer of the files on disk, and the links (see Layer).
func filesLayer(files, links map[string]string, mtime time.Time) (v1.Layer, error) {
	contents := make(map[string][]byte, len(files))
	for p, src := range files {
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("reading %s for %s: %w", src, p, err)
		}
		contents[p] = data
	}
	return layer(contents, links, mtime)
}

// Layer makes an uncompressed tar layer of the files (path in the image to
// content), owned by root, mode 0755, with the folders they need.
func Layer(files map[string][]byte, mtime time.Time) (v1.Layer, error) {
	return layer(files, nil, mtime)
}

// layer is Layer with hard links (path in the image to the path of one of
// the files), written after the files.
func layer(files map[string][]byte, links map[string]string, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	dirs := map[string]bool{}
	parents := func(clean string) error {
		var out []string // outermost first
		for d := path.Dir(clean); d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			out = append([]string{d}, out...)
		}
		for _, d := range out {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d[1:] + "/", Mode: 0o755, ModTime: mtime}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range paths {
		clean := path.Clean("/" + p)
		if err := parents(clean); err != nil {
			return nil, err
		}
		data := files[p]
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: clean[1:], Mode: 0o755, Size: int64(len(data)), ModTime: mtime}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(links))
	for p := range links {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		target := path.Clean("/" + links[p])
		if _, ok := files[links[p]]; !ok {
			if _, ok := files[target]; !ok {
				return nil, fmt.Errorf("link %s: %s is not one of the image's files", p, links[p])
			}
		}
		clean := path.Clean("/" + p)
		if err := parents(clean); err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeLink, Name: clean[1:], Linkname: target[1:], Mode: 0o755, ModTime: mtime}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	content := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	})
}
