package imagecache

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	core "k8s.io/client-go/testing"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

const testTaint = "kubefledged.io/warming"

// warmingStep runs one release pass for a node and returns the writes it
// made and when it asks to look again.
func (f *fixture) warmingStep(node string) ([]core.Action, time.Duration) {
	f.t.Helper()
	after, err := f.c.syncWarming(f.ctx, node)
	if err != nil {
		f.t.Fatalf("syncWarming %s: %v", node, err)
	}
	w := f.writes()
	f.catchUp()
	return w, after
}

func (f *fixture) taints(node string) []string {
	f.t.Helper()
	n, err := f.kube.CoreV1().Nodes().Get(f.ctx, node, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, t := range n.Spec.Taints {
		out = append(out, t.Key)
	}
	return out
}

// TestStartupTaint: a node that matches no cache is released at once; one
// that a cache matches is held until every pull there has settled, then
// released with one JSON patch that removes only the startup taint; one
// whose pulls do not settle is released at the timeout, with a Warning
// naming what was pending.
func TestStartupTaint(t *testing.T) {
	cfg := testConfig()
	cfg.StartupTaint, cfg.StartupTaintTimeout = testTaint, 10*time.Minute
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{
		newImageCache("web", withSelectedImages(map[string]string{"tier": "web"}, "nginx", "redis"))},
		newNode("node-a", withLabels("tier", "web"), withTaints("other.example/keep", testTaint)),
		newNode("node-b", withTaints(testTaint)),
		newNode("node-c", withLabels("tier", "web"), withTaints(testTaint)))
	drain := func() []string { return drainEvents(f) }
	drain()

	writes, _ := f.warmingStep("node-b")
	if len(writes) != 1 || writes[0].GetVerb() != "patch" {
		t.Fatalf("node-b, matched by no cache: %s; want one patch", describe(writes))
	}
	if got := f.taints("node-b"); len(got) != 0 {
		t.Errorf("node-b keeps taints %v", got)
	}

	writes, after := f.warmingStep("node-a")
	if len(writes) != 0 || after != 10*time.Minute {
		t.Errorf("node-a before its pulls: %s, look again after %v; want nothing, and a look at the timeout", describe(writes), after)
	}

	f.syncStarted("web")
	// node-a's Job completes; node-c's stays running.
	for _, j := range f.jobs() {
		if strings.Contains(j.Annotations["kubefledged.io/node"], "node-a") {
			f.completeJob(j)
		}
	}
	f.sync("web")
	f.clock.Step(30 * time.Second)
	drain()
	writes, _ = f.warmingStep("node-a")
	if len(writes) != 1 {
		t.Fatalf("node-a, warm: %s; want one patch", describe(writes))
	}
	patch := string(writes[0].(core.PatchAction).GetPatch())
	if want := `[{"op":"test","path":"/spec/taints/1","value":{"key":"kubefledged.io/warming","effect":"NoSchedule"}},{"op":"remove","path":"/spec/taints/1"}]`; patch != want {
		t.Errorf("patch %s\nwant  %s", patch, want)
	}
	if diff := cmp.Diff([]string{"other.example/keep"}, f.taints("node-a")); diff != "" {
		t.Errorf("node-a's taints (-want +got):\n%s", diff)
	}
	if evs := drain(); len(evs) != 1 || !strings.HasPrefix(evs[0], "Normal Warmed Removed the startup taint kubefledged.io/warming") ||
		!strings.HasSuffix(evs[0], ": 2 image pulls settled") {
		t.Errorf("events %q", evs)
	}

	// node-c's pulls never settle: held until the timeout, then released
	// with a Warning.
	if w, after := f.warmingStep("node-c"); len(w) != 0 || after <= 0 {
		t.Fatalf("node-c before the timeout: %s, after %v", describe(w), after)
	}
	f.clock.Step(10 * time.Minute)
	if w, _ := f.warmingStep("node-c"); len(w) != 1 {
		t.Fatalf("node-c at the timeout: %s; want one patch", describe(w))
	}
	if evs := drain(); len(evs) != 1 || !strings.HasPrefix(evs[0], "Warning WarmingTimedOut Removed the startup taint kubefledged.io/warming at the 10m0s timeout, with 2 pulls still pending: nginx (team-a/web), redis (team-a/web)") {
		t.Errorf("events %q", evs)
	}
	// A node without the taint is left alone.
	if w, _ := f.warmingStep("node-c"); len(w) != 0 {
		t.Errorf("a released node was patched again: %s", describe(w))
	}
}

// TestStartupTaintReleaseRefused: a release that an admission policy or
// RBAC refuses is not taken for a moved taint and retried in silence: it
// is an error, retried with backoff, with a Warning event on the node. A
// patch whose test failed because the taints moved is read again soon,
// without one.
func TestStartupTaintReleaseRefused(t *testing.T) {
	cfg := testConfig()
	cfg.StartupTaint, cfg.StartupTaintTimeout = testTaint, 10*time.Minute
	// The taint carries its time, as the API server may set: a copy read
	// again is the same taint, though not the same pointer.
	added := metav1.NewTime(t0)
	f := newFixture(t, cfg, nil, newNode("node-b", withTaints(testTaint), func(n *corev1.Node) { n.Spec.Taints[0].TimeAdded = &added }))
	for len(f.recorder.Events) > 0 {
		<-f.recorder.Events
	}
	refusal := apierrors.NewInvalid(schema.GroupKind{Kind: "Node"}, "node-b", field.ErrorList{
		field.Forbidden(field.NewPath(""), "ValidatingAdmissionPolicy 'kube-fledged-startup-taint' denied request")})
	f.kube.PrependReactor("patch", "nodes", func(core.Action) (bool, runtime.Object, error) { return true, nil, refusal })

	after, err := f.c.syncWarming(f.ctx, "node-b")
	if err == nil || !strings.Contains(err.Error(), "denied request") || after != 0 {
		t.Fatalf("a refused release: after %v, err %v; want the refusal as an error", after, err)
	}
	if evs := drainEvents(f); len(evs) != 1 || !strings.HasPrefix(evs[0], "Warning ReleaseRefused Could not remove the startup taint kubefledged.io/warming: ") {
		t.Errorf("events %q; want one ReleaseRefused Warning", evs)
	}

	// Now the taints move under the patch (its test fails): read again.
	n, _ := f.kube.CoreV1().Nodes().Get(f.ctx, "node-b", metav1.GetOptions{})
	n.Spec.Taints = append([]corev1.Taint{{Key: "other.example/new", Effect: corev1.TaintEffectNoSchedule}}, n.Spec.Taints...)
	if _, err := f.kube.CoreV1().Nodes().Update(f.ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	after, err = f.c.syncWarming(f.ctx, "node-b")
	if err != nil || after != time.Second {
		t.Errorf("a patch whose taints moved: after %v, err %v; want a look again in 1s", after, err)
	}
	if evs := drainEvents(f); len(evs) != 0 {
		t.Errorf("events %q for a moved taint; want none", evs)
	}
}

func drainEvents(f *fixture) []string {
	var evs []string
	for len(f.recorder.Events) > 0 {
		evs = append(evs, <-f.recorder.Events)
	}
	return evs
}
