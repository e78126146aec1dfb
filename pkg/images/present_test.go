package images

import "testing"

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
