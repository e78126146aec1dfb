package warming

import (
	"context"
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
	kubeinformers "k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2/ktesting"
	clocktesting "k8s.io/utils/clock/testing"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	fledgedfake "kubefledged.io/kube-fledged/pkg/client/clientset/versioned/fake"
	icinformers "kubefledged.io/kube-fledged/pkg/client/informers/externalversions"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/trim"
)

const testTaint = "kubefledged.io/warming"

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type fixture struct {
	t        *testing.T
	ctx      context.Context
	kube     *kubefake.Clientset
	client   *fledgedfake.Clientset
	kubeInf  kubeinformers.SharedInformerFactory
	icInf    icinformers.SharedInformerFactory
	c        *Controller
	clock    *clocktesting.FakeClock
	recorder *record.FakeRecorder
}

// testFilter is the filter of a controller run with the startup taint.
var testFilter = plan.NodeFilter{Architectures: []string{"amd64", "arm64"},
	Tolerations: append(puller.DefaultTolerations(), corev1.Toleration{Key: testTaint, Operator: corev1.TolerationOpExists,
		Effect: corev1.TaintEffectNoSchedule})}

func newFixture(t *testing.T, caches []*v1alpha2.ImageCache, nodes ...*corev1.Node) *fixture {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	f := &fixture{t: t, ctx: ctx, clock: clocktesting.NewFakeClock(t0), recorder: record.NewFakeRecorder(100)}
	var kubeObjs, icObjs []runtime.Object
	for _, n := range nodes {
		kubeObjs = append(kubeObjs, n)
	}
	for _, ic := range caches {
		icObjs = append(icObjs, ic)
	}
	f.kube, f.client = kubefake.NewClientset(kubeObjs...), fledgedfake.NewSimpleClientset(icObjs...)
	f.kubeInf = kubeinformers.NewSharedInformerFactory(f.kube, 0)
	f.icInf = icinformers.NewSharedInformerFactory(f.client, 0)
	c, err := New(testTaint, 10*time.Minute, testFilter, f.kube, f.icInf.Kubefledged().V1alpha2().ImageCaches(),
		f.icInf.Kubefledged().V1alpha2().ImageCacheSlices(), f.kubeInf.Core().V1().Nodes(), f.recorder, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	f.catchUp()
	return f
}

// catchUp makes the informer caches show what the fake API server holds,
// nodes trimmed as the binary's informer keeps them, and clears the actions.
func (f *fixture) catchUp() {
	f.t.Helper()
	nodes, _ := f.kube.CoreV1().Nodes().List(f.ctx, metav1.ListOptions{})
	var objs []any
	for i := range nodes.Items {
		obj, _ := trim.ForCache(&nodes.Items[i])
		objs = append(objs, obj)
		f.c.nodeSeen(obj.(*corev1.Node), false)
	}
	if err := f.kubeInf.Core().V1().Nodes().Informer().GetIndexer().Replace(objs, ""); err != nil {
		f.t.Fatal(err)
	}
	ics, _ := f.client.KubefledgedV1alpha2().ImageCaches("").List(f.ctx, metav1.ListOptions{})
	objs = nil
	for i := range ics.Items {
		objs = append(objs, &ics.Items[i])
	}
	if err := f.icInf.Kubefledged().V1alpha2().ImageCaches().Informer().GetIndexer().Replace(objs, ""); err != nil {
		f.t.Fatal(err)
	}
	sls, _ := f.client.KubefledgedV1alpha2().ImageCacheSlices("").List(f.ctx, metav1.ListOptions{})
	objs = nil
	for i := range sls.Items {
		objs = append(objs, &sls.Items[i])
	}
	if err := f.icInf.Kubefledged().V1alpha2().ImageCacheSlices().Informer().GetIndexer().Replace(objs, ""); err != nil {
		f.t.Fatal(err)
	}
	f.kube.ClearActions()
	f.client.ClearActions()
}

// step runs one release pass for a node and returns the writes it made and
// when it asks to look again.
func (f *fixture) step(node string) ([]core.Action, time.Duration) {
	f.t.Helper()
	after, err := f.c.sync(f.ctx, node)
	if err != nil {
		f.t.Fatalf("sync %s: %v", node, err)
	}
	var w []core.Action
	for _, a := range append(f.kube.Actions(), f.client.Actions()...) {
		if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
			w = append(w, a)
		}
	}
	f.catchUp()
	return w, after
}

// settle records in a cache's ledger the pulls of images on a node as the
// ImageCache controller would.
func (f *fixture) settle(cacheName, node string, imgs ...string) {
	f.t.Helper()
	ic, err := f.client.KubefledgedV1alpha2().ImageCaches("team-a").Get(f.ctx, cacheName, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	n, err := f.kube.CoreV1().Nodes().Get(f.ctx, node, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	led, err := fledgedtest.LoadLedger(f.ctx, f.client, ic)
	if err != nil {
		f.t.Fatal(err)
	}
	led.ForgetReplaced(map[string]*corev1.Node{node: n})
	for _, img := range imgs {
		key, err := images.Normalize(img)
		if err != nil {
			f.t.Fatal(err)
		}
		led.Set(node, key, ledger.Pulled)
	}
	if err := fledgedtest.RecordLedger(f.ctx, f.client, ic, led); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.client.KubefledgedV1alpha2().ImageCaches("team-a").UpdateStatus(f.ctx, ic, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.catchUp()
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

// events returns the events recorded since the last call.
func (f *fixture) events() []string { return fledgedtest.Events(f.recorder) }

func describe(actions []core.Action) string {
	var parts []string
	for _, a := range actions {
		parts = append(parts, a.GetVerb()+" "+a.GetResource().Resource)
	}
	return strings.Join(parts, ", ")
}

// TestStartupTaint: a node that matches no cache is released at once; one
// that a cache matches is held until every pull there has settled, then
// released with one JSON patch that removes only the startup taint; one
// whose pulls do not settle is released at the timeout, with a Warning
// naming what was pending.
func TestStartupTaint(t *testing.T) {
	f := newFixture(t, []*v1alpha2.ImageCache{
		fledgedtest.NewImageCache("team-a", "web", fledgedtest.WithSelectedImages(map[string]string{"tier": "web"}, "nginx", "redis"))},
		fledgedtest.NewNode("node-a", fledgedtest.WithLabels("tier", "web"), fledgedtest.WithTaints("other.example/keep", testTaint)),
		fledgedtest.NewNode("node-b", fledgedtest.WithTaints(testTaint)),
		fledgedtest.NewNode("node-c", fledgedtest.WithLabels("tier", "web"), fledgedtest.WithTaints(testTaint)))

	writes, _ := f.step("node-b")
	if len(writes) != 1 || writes[0].GetVerb() != "patch" || writes[0].GetResource().Resource != "nodes" {
		t.Fatalf("node-b, matched by no cache: %s; want one patch of the node", describe(writes))
	}
	if got := f.taints("node-b"); len(got) != 0 {
		t.Errorf("node-b keeps taints %v", got)
	}
	if evs := f.events(); len(evs) != 1 || !strings.HasSuffix(evs[0], ": 0 image pulls settled") {
		t.Errorf("events %q", evs)
	}

	writes, after := f.step("node-a")
	if len(writes) != 0 || after != 10*time.Minute {
		t.Errorf("node-a before its pulls: %s, look again after %v; want nothing, and a look at the timeout", describe(writes), after)
	}
	f.settle("web", "node-a", "redis")
	if writes, after := f.step("node-a"); len(writes) != 0 || after != 10*time.Minute {
		t.Errorf("node-a with one of two pulls settled: %s, after %v; want nothing", describe(writes), after)
	}
	f.settle("web", "node-a", "nginx")
	f.clock.Step(30 * time.Second)
	writes, _ = f.step("node-a")
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
	if evs := f.events(); len(evs) != 1 || !strings.HasPrefix(evs[0], "Normal Warmed Removed the startup taint kubefledged.io/warming") ||
		!strings.HasSuffix(evs[0], ": 2 image pulls settled") {
		t.Errorf("events %q", evs)
	}

	// node-c's pulls never settle: held until the timeout, then released
	// with a Warning.
	// Its timeout runs from its first pass, 30s in.
	if w, after := f.step("node-c"); len(w) != 0 || after != 10*time.Minute {
		t.Fatalf("node-c before the timeout: %s, after %v", describe(w), after)
	}
	f.clock.Step(10*time.Minute - time.Second)
	if w, after := f.step("node-c"); len(w) != 0 || after != time.Second {
		t.Fatalf("node-c a second before the timeout: %s, after %v", describe(w), after)
	}
	f.clock.Step(time.Second)
	if w, _ := f.step("node-c"); len(w) != 1 {
		t.Fatalf("node-c at the timeout: %s; want one patch", describe(w))
	}
	if evs := f.events(); len(evs) != 1 || !strings.HasPrefix(evs[0], "Warning WarmingTimedOut Removed the startup taint kubefledged.io/warming at the 10m0s timeout, with 2 pulls still pending: nginx (team-a/web), redis (team-a/web)") {
		t.Errorf("events %q", evs)
	}
	// A node without the taint is left alone.
	if w, _ := f.step("node-c"); len(w) != 0 {
		t.Errorf("a released node was patched again: %s", describe(w))
	}
}

// TestStartupTaintWhatCachesWant: what a cache wants of a node, by the
// cache's state.
func TestStartupTaintWhatCachesWant(t *testing.T) {
	deleting := metav1.NewTime(t0)
	for _, tc := range []struct {
		name    string
		cache   *v1alpha2.ImageCache
		release bool
	}{
		{"pending pulls hold the node", fledgedtest.NewImageCache("team-a", "web", fledgedtest.WithImages("nginx")), false},
		{"an invalid image counts as settled", fledgedtest.NewImageCache("team-a", "web", fledgedtest.WithImages(strings.Repeat("a", 256))), true},
		{"a cache being deleted wants nothing", func() *v1alpha2.ImageCache {
			ic := fledgedtest.NewImageCache("team-a", "web", fledgedtest.WithImages("nginx"))
			ic.DeletionTimestamp, ic.Finalizers = &deleting, []string{"x"}
			return ic
		}(), true},
		{"a purged cache wants nothing", func() *v1alpha2.ImageCache {
			ic := fledgedtest.NewImageCache("team-a", "web", fledgedtest.WithImages("nginx"))
			ic.Status.Reason = v1alpha2.ImageCacheReasonPurge
			return ic
		}(), true},
		{"a cache refused as too large wants nothing", func() *v1alpha2.ImageCache {
			ic := fledgedtest.NewImageCache("team-a", "web", fledgedtest.WithImages("nginx"))
			ic.Status.Conditions = []metav1.Condition{{Type: v1alpha2.ConditionReady, Status: metav1.ConditionFalse,
				Reason: "TooLarge", ObservedGeneration: 1}}
			return ic
		}(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, []*v1alpha2.ImageCache{tc.cache}, fledgedtest.NewNode("node-a", fledgedtest.WithTaints(testTaint)))
			writes, _ := f.step("node-a")
			if got := len(writes) == 1; got != tc.release {
				t.Errorf("released: %v (%s), want %v", got, describe(writes), tc.release)
			}
		})
	}
}

// TestStartupTaintReleaseRefused: a release that an admission policy or
// RBAC refuses is not taken for a moved taint and retried in silence: it
// is an error, retried with backoff, with a Warning event on the node. A
// patch whose test failed because the taints moved is read again soon,
// without one.
func TestStartupTaintReleaseRefused(t *testing.T) {
	// The taint carries its time, as the API server may set: a copy read
	// again is the same taint, though not the same pointer.
	added := metav1.NewTime(t0)
	f := newFixture(t, nil, fledgedtest.NewNode("node-b", fledgedtest.WithTaints(testTaint),
		func(n *corev1.Node) { n.Spec.Taints[0].TimeAdded = &added }))
	refusal := apierrors.NewInvalid(schema.GroupKind{Kind: "Node"}, "node-b", field.ErrorList{
		field.Forbidden(field.NewPath(""), "ValidatingAdmissionPolicy 'kube-fledged-startup-taint' denied request")})
	f.kube.PrependReactor("patch", "nodes", func(core.Action) (bool, runtime.Object, error) { return true, nil, refusal })

	after, err := f.c.sync(f.ctx, "node-b")
	if err == nil || !strings.Contains(err.Error(), "denied request") || after != 0 {
		t.Fatalf("a refused release: after %v, err %v; want the refusal as an error", after, err)
	}
	if evs := f.events(); len(evs) != 1 || !strings.HasPrefix(evs[0], "Warning ReleaseRefused Could not remove the startup taint kubefledged.io/warming: ") {
		t.Errorf("events %q; want one ReleaseRefused Warning", evs)
	}

	// Now the taints move under the patch (its test fails): read again.
	n, _ := f.kube.CoreV1().Nodes().Get(f.ctx, "node-b", metav1.GetOptions{})
	n.Spec.Taints = append([]corev1.Taint{{Key: "other.example/new", Effect: corev1.TaintEffectNoSchedule}}, n.Spec.Taints...)
	if _, err := f.kube.CoreV1().Nodes().Update(f.ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	after, err = f.c.sync(f.ctx, "node-b")
	if err != nil || after != time.Second {
		t.Errorf("a patch whose taints moved: after %v, err %v; want a look again in 1s", after, err)
	}
	if evs := f.events(); len(evs) != 0 {
		t.Errorf("events %q for a moved taint; want none", evs)
	}
}

// TestNodeEventsEnqueue: a tainted node is enqueued when seen and when a
// cache changes; a node without the taint, or deleted, is not.
func TestNodeEventsEnqueue(t *testing.T) {
	f := newFixture(t, nil)
	for f.c.queue.Len() > 0 {
		k, _ := f.c.queue.Get()
		f.c.queue.Done(k)
	}
	tainted := fledgedtest.NewNode("node-a", fledgedtest.WithTaints(testTaint))
	f.c.nodeChanged(tainted, false)
	f.c.nodeChanged(fledgedtest.NewNode("node-b"), false)
	if n := f.c.queue.Len(); n != 1 {
		t.Fatalf("queue %d, want node-a only", n)
	}
	k, _ := f.c.queue.Get()
	f.c.queue.Done(k)
	f.c.cacheChanged()
	if n := f.c.queue.Len(); n != 1 {
		t.Errorf("after a cache change: queue %d, want node-a", n)
	}
	k, _ = f.c.queue.Get()
	f.c.queue.Done(k)
	f.c.nodeChanged(tainted, true)
	f.c.cacheChanged()
	if n := f.c.queue.Len(); n != 0 {
		t.Errorf("after node-a's deletion: queue %d, want 0", n)
	}
}

// TestStartupTaintNodeThePullsNeverRunOn: a node whose operating system or
// architecture the helper image lacks is released at once, as one no cache
// matches; a cordoned one is held like any other until its pulls settle.
func TestStartupTaintNodeThePullsNeverRunOn(t *testing.T) {
	for _, tc := range []struct {
		name    string
		node    fledgedtest.NodeOption
		release bool
	}{
		{"windows", fledgedtest.WithLabels(corev1.LabelOSStable, "windows"), true},
		{"s390x", fledgedtest.WithLabels(corev1.LabelOSStable, "linux", corev1.LabelArchStable, "s390x"), true},
		{"arm64", fledgedtest.WithLabels(corev1.LabelOSStable, "linux", corev1.LabelArchStable, "arm64"), false},
		{"cordoned", func(n *corev1.Node) { n.Spec.Unschedulable = true }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, []*v1alpha2.ImageCache{fledgedtest.NewImageCache("team-a", "web", fledgedtest.WithImages("nginx"))},
				fledgedtest.NewNode("node-a", fledgedtest.WithTaints(testTaint), tc.node))
			writes, _ := f.step("node-a")
			if got := len(writes) == 1; got != tc.release {
				t.Errorf("released: %v (%s), want %v", got, describe(writes), tc.release)
			}
		})
	}
}
