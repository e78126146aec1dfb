package images

import (
	"strings"
	"testing"
)

func TestPresentMatchesNormalisedNames(t *testing.T) {
	p := NewPresent([]string{
		"nginx",
		"ghcr.io/org/app@sha256:" + sixtyFourHex,
		"registry.k8s.io/pause:3.10",
		"registry.k8s.io/pause:3.10", // twice
		"NOT a reference",
	})
	if p.Len() != 3 {
		t.Errorf("Len() = %d, want 3 (the duplicate and the invalid name left out)", p.Len())
	}
	for _, tc := range []struct {
		image string
		want  bool
	}{
		{"docker.io/library/nginx:latest", true},
		{"nginx", true},
		{"ghcr.io/org/app@sha256:" + sixtyFourHex, true},
		{"registry.k8s.io/pause:3.10", true},
		{"registry.k8s.io/pause:3.1", false},
		{"nginx:1.25", false},
		{"ghcr.io/org/app:latest", false},
	} {
		key, err := Normalize(tc.image)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Has(key); got != tc.want {
			t.Errorf("Has(%q) = %v, want %v", key, got, tc.want)
		}
	}
	if Present("").Has("docker.io/library/nginx:latest") {
		t.Error("the empty set has nginx")
	}
}

const sixtyFourHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestPresentHasAnImageByTagAndDigest: an image the spec names by both a tag
// and a digest is known to the runtime, and listed by the kubelet, by its
// digest (the tag is dropped when the digest is there: the pull fetches the
// digest), so that is what the node's list is asked for.
func TestPresentHasAnImageByTagAndDigest(t *testing.T) {
	digest := "sha256:" + strings.Repeat("d", 64)
	key, err := Normalize("registry.example:5000/team/app:v1@" + digest)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		listed []string
		want   bool
	}{
		{"the digest and the tag listed", []string{"registry.example:5000/team/app@" + digest, "registry.example:5000/team/app:v1"}, true},
		{"the digest listed alone", []string{"registry.example:5000/team/app@" + digest}, true},
		{"the tag listed alone", []string{"registry.example:5000/team/app:v1"}, false},
		{"another digest listed", []string{"registry.example:5000/team/app@sha256:" + strings.Repeat("e", 64)}, false},
	} {
		if got := NewPresent(tc.listed).Has(key); got != tc.want {
			t.Errorf("%s: Has(%s) = %v, want %v", tc.name, key, got, tc.want)
		}
	}
}
