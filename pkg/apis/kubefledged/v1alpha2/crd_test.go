package v1alpha2_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/images"
)

// crdSchema loads the generated CRD's openAPIV3Schema.
func crdSchema(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "deploy", "crd", "kubefledged.io_imagecaches.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd map[string]any
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	return dig(t, crd, "spec", "versions", 0, "schema", "openAPIV3Schema")
}

func dig(t *testing.T, v any, path ...any) map[string]any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			v = v.(map[string]any)[k]
		case int:
			v = v.([]any)[k]
		}
		if v == nil {
			t.Fatalf("CRD schema has no %v", path)
		}
	}
	return v.(map[string]any)
}

// TestCRDLimitsMatchConstants keeps the schema's caps and the Go constants the
// controller relies on in step.
func TestCRDLimitsMatchConstants(t *testing.T) {
	s := crdSchema(t)
	spec := dig(t, s, "properties", "spec", "properties")
	entry := dig(t, spec, "cacheSpec", "items", "properties")
	checks := []struct {
		name string
		got  any
		want int
	}{
		{"cacheSpec maxItems", dig(t, spec, "cacheSpec")["maxItems"], v1alpha2.MaxCacheSpecEntries},
		{"images maxItems", dig(t, entry, "images")["maxItems"], v1alpha2.MaxImagesPerEntry},
		{"image maxLength", dig(t, entry, "images", "items")["maxLength"], v1alpha2.MaxImageLength},
		{"nodeSelector maxProperties", dig(t, entry, "nodeSelector")["maxProperties"], v1alpha2.MaxNodeSelectorLabels},
		{"imagePullSecrets maxItems", dig(t, spec, "imagePullSecrets")["maxItems"], v1alpha2.MaxImagePullSecrets},
	}
	for _, c := range checks {
		if f, ok := c.got.(float64); !ok || int(f) != c.want {
			t.Errorf("%s: CRD has %v, Go constant is %d", c.name, c.got, c.want)
		}
	}
}

// TestImagePatternAgreesWithNormaliser checks the schema's image pattern
// against the reference parser the controller uses: what the schema admits,
// the controller can parse, and what the schema refuses is really invalid.
func TestImagePatternAgreesWithNormaliser(t *testing.T) {
	s := crdSchema(t)
	pattern := dig(t, s, "properties", "spec", "properties", "cacheSpec", "items", "properties", "images", "items")["pattern"].(string)
	re := regexp.MustCompile(pattern)
	sha := strings.Repeat("0123456789abcdef", 4)
	valid := []string{
		"nginx", "nginx:1.27", "library/nginx", "docker.io/library/nginx:latest", "a/b/c/d",
		"localhost/app", "localhost:5000/app:v1", "127.0.0.1:5000/app", "[::1]:5000/app:tag", "[fe80::1]/app",
		"registry.example.com/org/app:v1.2.3-rc.1_x", "Registry.Example.COM/org/app:V1", "MyOrg/app",
		"ghcr.io/org/app@sha256:" + sha, "ghcr.io/org/app:v1@sha256:" + sha,
		"app@sha512:" + sha + sha, "a__b/c--d/e.f_g:latest", "x:" + strings.Repeat("t", 128),
	}
	invalid := []string{
		"", " ", "nginx latest", "nginx\t", "Nginx", "nginx/App", "myorg/App", "-nginx", "nginx-", "nginx..x",
		"nginx:", "nginx:-tag", "nginx:" + strings.Repeat("t", 129), "nginx@sha256:abc", "nginx@sha256:" + sha[:63],
		"nginx@md5:" + sha, "nginx@SHA256:" + sha, "nginx@sha256:" + strings.ToUpper(sha), "/nginx", "nginx/",
		"http://registry/app", "registry.example.com:port/app", "a//b",
	}
	for _, img := range valid {
		if !re.MatchString(img) {
			t.Errorf("schema refuses valid image %q", img)
		}
		if _, err := images.Normalize(img); err != nil {
			t.Errorf("normaliser refuses %q, which the schema admits: %v", img, err)
		}
	}
	for _, img := range invalid {
		if re.MatchString(img) {
			t.Errorf("schema admits invalid image %q", img)
		}
		if _, err := images.Normalize(img); err == nil {
			t.Errorf("normaliser admits %q, which the schema refuses", img)
		}
	}
	// What the schema cannot see: the 255-character limit on a repository
	// name. The controller reports these as InvalidImageName.
	long := strings.Repeat("a", 256)
	if !re.MatchString(long) {
		t.Errorf("schema refuses %d-character name; expected to leave that to the controller", len(long))
	}
	if _, err := images.Normalize(long); err == nil {
		t.Errorf("normaliser admits a %d-character repository name", len(long))
	}
}
