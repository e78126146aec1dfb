package framework

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kubefledged.io/kube-fledged/pkg/imagebuild"
)

// The test images the real-node tests cache, built without Docker.

// ShellImage is a small image with a shell: the host's /bin/sh and the shared
// libraries it needs, with /bin/sh as its command.
func ShellImage() (v1.Image, error) {
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		return nil, fmt.Errorf("finding the host's shell: %w", err)
	}
	files := map[string][]byte{}
	if err := addWithLibraries(files, sh, "/bin/sh"); err != nil {
		return nil, err
	}
	return imageOf(files, []string{"/bin/sh"})
}

// NoShellImage is a distroless-like image: one data file, no shell, no /bin,
// no command.
func NoShellImage() (v1.Image, error) {
	return imageOf(map[string][]byte{"/etc/kube-fledged-e2e/data": []byte("an image with no shell and no /bin\n")}, nil)
}

// LargeImage is an image of one layer holding mib MiB of incompressible
// bytes, the same for every call with the same seed.
func LargeImage(mib int, seed uint64) (v1.Image, error) {
	return imageOf(map[string][]byte{"/data/blob": randomBytes(mib<<20, seed)}, nil)
}

// LargeShellImage is ShellImage with mib MiB of incompressible bytes added:
// an image that takes a while to pull and that a pod can run (/bin/sh -c).
func LargeShellImage(mib int, seed uint64) (v1.Image, error) {
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		return nil, fmt.Errorf("finding the host's shell: %w", err)
	}
	files := map[string][]byte{"/data/blob": randomBytes(mib<<20, seed)}
	if err := addWithLibraries(files, sh, "/bin/sh"); err != nil {
		return nil, err
	}
	return imageOf(files, []string{"/bin/sh", "-c", "exit 0"})
}

func randomBytes(n int, seed uint64) []byte {
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x6b756265))
	for i := 0; i+8 <= len(data); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	return data
}

// WithLabel returns the image with one more label in its config, so with an
// image ID of its own.
func WithLabel(img v1.Image, key, value string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	cf.Config.Labels[key] = value
	return mutate.ConfigFile(img, cf)
}

// WithUser returns the image with its config's user set (USER in a
// Dockerfile).
func WithUser(img v1.Image, user string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Config.User = user
	return mutate.ConfigFile(img, cf)
}

// PushImage pushes an image to a plain-HTTP registry, with basic auth when
// user is set.
func PushImage(img v1.Image, ref, user, password string) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	auth := authn.Anonymous
	if user != "" {
		auth = &authn.Basic{Username: user, Password: password}
	}
	if err := remote.Write(r, img, remote.WithAuth(auth)); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	return nil
}

// addWithLibraries adds an ELF binary at dest, with its interpreter and the
// shared libraries it names, found where the interpreter lives.
func addWithLibraries(files map[string][]byte, src, dest string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	files[dest] = data
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	var interp string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return err
			}
			interp = string(bytes.TrimRight(b, "\x00"))
		}
	}
	if interp == "" {
		return nil // static
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return err
	}
	if err := addFile(files, interp); err != nil {
		return err
	}
	dirs := []string{"/lib/" + runtime.GOARCH + "-linux-gnu", "/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
		"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/lib", "/usr/lib"}
	for _, lib := range libs {
		found := false
		for _, d := range dirs {
			p := filepath.Join(d, lib)
			if _, err := os.Stat(p); err == nil {
				if err := addFile(files, p); err != nil {
					return err
				}
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%s needs %s, not found in %v", src, lib, dirs)
		}
	}
	return nil
}

func addFile(files map[string][]byte, p string) error {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(real)
	if err != nil {
		return err
	}
	files[p] = data
	return nil
}

// imageOf makes a linux image of one layer holding the files (mode 0755,
// owned by root, with their folders), for this machine's architecture.
func imageOf(files map[string][]byte, cmd []string) (v1.Image, error) {
	layer, err := imagebuild.Layer(files, time.Time{})
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
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Cmd = cmd
	cf.Config.Env = []string{"PATH=/bin"}
	return mutate.ConfigFile(img, cf)
}
