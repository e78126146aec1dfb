package imagebuild

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLinksAreHardLinks: a link is a hard link to its file in the layer,
// after the file, with the folders it needs, and adds no copy of the
// file; a link to a file the image lacks is an error.
func TestLinksAreHardLinks(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "fledged")
	content := strings.Repeat("binary", 1000)
	if err := os.WriteFile(bin, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := Build(Options{Files: map[string]string{"/fledged": bin}, Links: map[string]string{"/opt/bin/kubefledged-controller": "/fledged"},
		Entrypoint: []string{"/fledged"}, Arch: "amd64", Created: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %v, err %v", layers, err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	var got []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		e := string(h.Typeflag) + " " + h.Name
		if h.Typeflag == tar.TypeLink {
			e += " -> " + h.Linkname
		}
		if h.Typeflag == tar.TypeLink && h.Size != 0 {
			t.Errorf("%s has %d bytes of its own", h.Name, h.Size)
		}
		got = append(got, e)
	}
	want := "0 fledged|5 opt/|5 opt/bin/|1 opt/bin/kubefledged-controller -> fledged"
	if strings.Join(got, "|") != want {
		t.Errorf("layer entries %q, want %q", strings.Join(got, "|"), want)
	}
	if _, err := Build(Options{Files: map[string]string{"/fledged": bin}, Links: map[string]string{"/x": "/absent"}, Arch: "amd64"}); err == nil ||
		!strings.Contains(err.Error(), "/absent is not one of the image's files") {
		t.Errorf("a link to an absent file: %v", err)
	}
}
