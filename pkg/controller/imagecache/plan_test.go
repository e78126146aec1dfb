package imagecache

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// Each node wants each image once, sorted by key, however many entries
// select it and however an entry spells an image twice; the first spelling
// is the one shown; an invalid image is told per node.
func TestPlanWantsEachImageOnceANode(t *testing.T) {
	node := func(name string, l map[string]string) *corev1.Node {
		labels := map[string]string{puller.HostnameLabel: name}
		for k, v := range l {
			labels[k] = v
		}
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	nodes := []*corev1.Node{
		node("a", map[string]string{"tier": "web"}),
		node("b", map[string]string{"tier": "web", "gpu": "yes"}),
		node("c", map[string]string{"gpu": "yes"}),
		node("d", nil),
	}
	ic := &v1alpha2.ImageCache{Spec: v1alpha2.ImageCacheSpec{CacheSpec: []v1alpha2.CacheSpecImages{
		{Images: []string{"nginx", "docker.io/library/nginx:latest", "redis:7", "Bad Image"},
			NodeSelector: map[string]v1alpha2.LabelValue{"tier": "web"}},
		{Images: []string{"cuda:12", "library/redis:7", "nginx:latest"}, NodeSelector: map[string]v1alpha2.LabelValue{"gpu": "yes"}},
	}}}
	p := computePlan(ic, nodes, testConfig().NodeFilter(), false)
	want := map[string][]string{
		"a": {"docker.io/library/nginx:latest", "docker.io/library/redis:7"},
		"b": {"docker.io/library/cuda:12", "docker.io/library/nginx:latest", "docker.io/library/redis:7"},
		"c": {"docker.io/library/cuda:12", "docker.io/library/nginx:latest", "docker.io/library/redis:7"},
	}
	if len(p.nodes) != len(want) {
		t.Errorf("plan has %d nodes, want %d", len(p.nodes), len(want))
	}
	for name, keys := range want {
		w := p.nodes[name]
		if w == nil {
			t.Errorf("node %s not in the plan", name)
			continue
		}
		var got []string
		for _, wi := range w.images {
			got = append(got, wi.key)
		}
		if !slices.Equal(got, keys) {
			t.Errorf("node %s wants %v, want %v", name, got, keys)
		}
		if w.hostname != name {
			t.Errorf("node %s: hostname %q", name, w.hostname)
		}
	}
	for _, wi := range p.nodes["c"].images {
		if wi.key == "docker.io/library/nginx:latest" && wi.image != "nginx" {
			t.Errorf("nginx shown as %q, want its first spelling %q", wi.image, "nginx")
		}
	}
	if got := p.invalidNodes["Bad Image"]; !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("invalid image told on %v, want [a b]", got)
	}
}
