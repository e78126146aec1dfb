package plan

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// testFilter is the controller's filter with its default flags.
var testFilter = NodeFilter{Architectures: []string{"amd64", "arm64"}, Tolerations: puller.DefaultTolerations()}

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type nodeOption = fledgedtest.NodeOption

var (
	newNode    = fledgedtest.NewNode
	withLabels = fledgedtest.WithLabels
	notReady   = fledgedtest.NotReady
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
	p := Compute(ic, nodes, testFilter, false)
	want := map[string][]string{
		"a": {"docker.io/library/nginx:latest", "docker.io/library/redis:7"},
		"b": {"docker.io/library/cuda:12", "docker.io/library/nginx:latest", "docker.io/library/redis:7"},
		"c": {"docker.io/library/cuda:12", "docker.io/library/nginx:latest", "docker.io/library/redis:7"},
	}
	if len(p.Nodes) != len(want) {
		t.Errorf("plan has %d nodes, want %d", len(p.Nodes), len(want))
	}
	for name, keys := range want {
		w := p.Nodes[name]
		if w == nil {
			t.Errorf("node %s not in the plan", name)
			continue
		}
		var got []string
		for _, wi := range w.Images {
			got = append(got, wi.Key)
		}
		if !slices.Equal(got, keys) {
			t.Errorf("node %s wants %v, want %v", name, got, keys)
		}
		if w.Hostname != name {
			t.Errorf("node %s: hostname %q", name, w.Hostname)
		}
	}
	for _, wi := range p.Nodes["c"].Images {
		if wi.Key == "docker.io/library/nginx:latest" && wi.Image != "nginx" {
			t.Errorf("nginx shown as %q, want its first spelling %q", wi.Image, "nginx")
		}
	}
	if got := p.InvalidNodes["Bad Image"]; !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("invalid image told on %v, want [a b]", got)
	}
}

func withPlatform(os, arch string) nodeOption {
	return withLabels(corev1.LabelOSStable, os, corev1.LabelArchStable, arch)
}

func withTaint(key string, effect corev1.TaintEffect) nodeOption {
	return func(n *corev1.Node) { n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Effect: effect}) }
}

func cordoned() nodeOption { return func(n *corev1.Node) { n.Spec.Unschedulable = true } }

func TestSkipReason(t *testing.T) {
	everything := append(puller.DefaultTolerations(), corev1.Toleration{Operator: corev1.TolerationOpExists})
	cases := []struct {
		name        string
		node        []nodeOption
		tolerations []corev1.Toleration
		want        string
	}{
		{"linux amd64", []nodeOption{withPlatform("linux", "amd64")}, nil, ""},
		{"linux arm64", []nodeOption{withPlatform("linux", "arm64")}, nil, ""},
		{"no os or arch label", nil, nil, ""},
		{"windows", []nodeOption{withPlatform("windows", "amd64")}, nil, reasons.UnsupportedOS},
		{"s390x", []nodeOption{withPlatform("linux", "s390x")}, nil, reasons.UnsupportedArch},
		{"windows and not ready", []nodeOption{withPlatform("windows", "amd64"), notReady()}, nil, reasons.UnsupportedOS},
		{"not ready", []nodeOption{notReady()}, nil, reasons.NodeNotReady},
		{"cordoned", []nodeOption{cordoned()}, everything, reasons.NodeUnschedulable},
		{"the unschedulable taint", []nodeOption{withTaint(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule)}, everything,
			reasons.NodeUnschedulable},
		{"network unavailable", []nodeOption{withTaint("node.kubernetes.io/network-unavailable", corev1.TaintEffectNoSchedule)},
			everything, reasons.NetworkNotReady},
		{"cilium not ready", []nodeOption{withTaint("node.cilium.io/agent-not-ready", corev1.TaintEffectNoExecute)}, nil,
			reasons.NetworkNotReady},
		{"not initialised by its cloud provider", []nodeOption{withTaint("node.cloudprovider.kubernetes.io/uninitialized",
			corev1.TaintEffectNoSchedule)}, nil, reasons.NetworkNotReady},
		{"a taint not tolerated", []nodeOption{withTaint("dedicated", corev1.TaintEffectNoSchedule)}, nil, reasons.NodeTainted},
		{"a NoExecute taint not tolerated", []nodeOption{withTaint("dedicated", corev1.TaintEffectNoExecute)}, nil, reasons.NodeTainted},
		{"a taint tolerated", []nodeOption{withTaint("dedicated", corev1.TaintEffectNoSchedule)},
			[]corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}, ""},
		{"every taint tolerated", []nodeOption{withTaint("dedicated", corev1.TaintEffectNoSchedule)}, everything, ""},
		{"a PreferNoSchedule taint", []nodeOption{withTaint("dedicated", corev1.TaintEffectPreferNoSchedule)}, nil, ""},
		{"memory pressure", []nodeOption{withTaint(corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule)}, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := NodeFilter{Architectures: []string{"amd64", "arm64"}, Tolerations: append(puller.DefaultTolerations(), c.tolerations...)}
			if got := f.SkipReason(newNode("node-a", c.node...)); got != c.want {
				t.Errorf("SkipReason = %q, want %q", got, c.want)
			}
		})
	}
	if got := (NodeFilter{}).SkipReason(newNode("node-a", withPlatform("linux", "riscv64"))); got != "" {
		t.Errorf("with no architectures given, a riscv64 node is skipped: %q", got)
	}
}

func TestTimeLeft(t *testing.T) {
	start := metav1.NewTime(t0)
	for _, tc := range []struct {
		name    string
		counts  v1alpha2.PullCounts
		elapsed time.Duration
		want    string
	}{
		{"too early", v1alpha2.PullCounts{Succeeded: 50, Pending: 50}, 20 * time.Second, ""},
		{"too few settled", v1alpha2.PullCounts{Succeeded: 9, Pending: 91}, time.Hour, ""},
		{"nothing pending", v1alpha2.PullCounts{Succeeded: 100, Skipped: 3}, time.Hour, ""},
		{"half way in a minute", v1alpha2.PullCounts{Succeeded: 40, Failed: 10, Pending: 50}, time.Minute, "about 1 minute left"},
		{"a third in two minutes", v1alpha2.PullCounts{Succeeded: 3400, Pending: 6600}, 2 * time.Minute, "about 4 minutes left"},
		{"nearly done", v1alpha2.PullCounts{Succeeded: 990, Pending: 10}, 5 * time.Minute, "less than a minute left"},
		{"long", v1alpha2.PullCounts{Succeeded: 10, Pending: 990}, 5 * time.Minute, "about 8 hours left"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if d, ok := TimeLeft(tc.counts, &start, t0.Add(tc.elapsed)); ok {
				got = LeftPhrase(d)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
