package images

import (
	"fmt"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	digest := "sha256:" + strings.Repeat("a", 64)
	cases := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "nginx", want: "docker.io/library/nginx:latest"},
		{in: "nginx:1.27", want: "docker.io/library/nginx:1.27"},
		{in: "library/nginx:1.27", want: "docker.io/library/nginx:1.27"},
		{in: "docker.io/library/nginx:latest", want: "docker.io/library/nginx:latest"},
		{in: "index.docker.io/library/nginx", want: "docker.io/library/nginx:latest"},
		{in: "jenkins/jenkins:lts", want: "docker.io/jenkins/jenkins:lts"},
		{in: "ghcr.io/org/app", want: "ghcr.io/org/app:latest"},
		{in: "localhost:5000/app:v1", want: "localhost:5000/app:v1"},
		{in: "ghcr.io/org/app@" + digest, want: "ghcr.io/org/app@" + digest},
		{in: "ghcr.io/org/app:v1@" + digest, want: "ghcr.io/org/app:v1@" + digest},
		{in: "Nginx", wantErr: true},
		{in: "", wantErr: true},
		{in: "nginx latest", wantErr: true},
		{in: "nginx@sha256:abc", wantErr: true},
		{in: strings.Repeat("a", 256), wantErr: true}, // repository name over 255 characters
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Normalize(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Normalize(%q) = %q, want an error", tc.in, got)
				}
				if !strings.Contains(err.Error(), "invalid image reference") {
					t.Errorf("error %q does not say what is wrong", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	digest := "sha256:" + strings.Repeat("b", 64)
	cases := map[string]string{
		"nginx":                          "docker.io/library/nginx:latest",
		"nginx:1.2":                      "docker.io/library/nginx:1.2",
		"ghcr.io/org/app@" + digest:      "ghcr.io/org/app@" + digest,
		"ghcr.io/org/app:v1@" + digest:   "ghcr.io/org/app@" + digest,
		"registry.local:5000/a/b:latest": "registry.local:5000/a/b:latest",
	}
	for in, want := range cases {
		got, err := Keys(in)
		if err != nil {
			t.Fatalf("Keys(%q): %v", in, err)
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("Keys(%q) = %v, want [%s]", in, got, want)
		}
	}
	if _, err := Keys("UPPER"); err == nil {
		t.Error("Keys accepted an invalid reference")
	}
}

// TestNormalizeRemembersBounded: a remembered result is the same as a fresh
// one, errors included, and the memory is bounded.
func TestNormalizeRemembersBounded(t *testing.T) {
	for range 2 {
		if got, err := Normalize("nginx:1.27"); err != nil || got != "docker.io/library/nginx:1.27" {
			t.Fatalf("Normalize(nginx:1.27) = %q, %v", got, err)
		}
		if _, err := Normalize("nginx::1"); err == nil {
			t.Fatal("an invalid reference was accepted")
		}
	}
	for i := range maxRemembered + 10 {
		if _, err := Normalize(fmt.Sprintf("registry.example/app:%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	normalized.Range(func(any, any) bool { n++; return true })
	if n > maxRemembered {
		t.Errorf("%d references remembered, want at most %d", n, maxRemembered)
	}
}

func TestByDigestAndLatest(t *testing.T) {
	for _, tc := range []struct {
		image            string
		byDigest, latest bool
	}{
		{"nginx", false, true},
		{"nginx:latest", false, true},
		{"nginx:1.27", false, false},
		{"registry.local:5000/app", false, true},
		{"nginx@sha256:" + strings.Repeat("a", 64), true, false},
		{"nginx:latest@sha256:" + strings.Repeat("a", 64), true, false},
	} {
		key, err := Normalize(tc.image)
		if err != nil {
			t.Fatal(err)
		}
		if ByDigest(key) != tc.byDigest || Latest(key) != tc.latest {
			t.Errorf("%s (%s): by digest %v, latest %v; want %v, %v", tc.image, key, ByDigest(key), Latest(key), tc.byDigest, tc.latest)
		}
	}
}
