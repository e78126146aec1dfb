package imagecache

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kubeinformers "k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2/ktesting"
	clocktesting "k8s.io/utils/clock/testing"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	fledgedfake "kubefledged.io/kube-fledged/pkg/client/clientset/versioned/fake"
	icinformers "kubefledged.io/kube-fledged/pkg/client/informers/externalversions"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
	"kubefledged.io/kube-fledged/pkg/trim"
)

const testNS = "team-a"

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// testControllerNS is the controller's namespace, where delete Jobs run.
const testControllerNS = "kube-fledged"

func testConfig() Config {
	return Config{
		Puller: puller.Config{
			HelperImage:              "registry.local/kube-fledged-helper:test",
			CRIImage:                 "registry.local/kube-fledged-cri:test",
			PullPolicy:               corev1.PullIfNotPresent,
			PullDeadline:             time.Minute,
			DeleteNamespace:          testControllerNS,
			DeleteServiceAccountName: "kube-fledged-image-delete",
			Tolerations:              puller.DefaultTolerations(),
		},
		HelperArchitectures: []string{"amd64", "arm64"},
		ImagesPerJob:        10,
		MaxInFlightJobs:     100,
		NodeStatusMaxImages: 50,
	}
}

// --- builders (fledgedtest's, in the cache's namespace) ---

type icOption = fledgedtest.CacheOption

func newImageCache(name string, opts ...icOption) *v1alpha2.ImageCache {
	return fledgedtest.NewImageCache(testNS, name, opts...)
}

type nodeOption = fledgedtest.NodeOption

var (
	withImages         = fledgedtest.WithImages
	withSelectedImages = fledgedtest.WithSelectedImages
	withPullSecrets    = fledgedtest.WithPullSecrets
	newNode            = fledgedtest.NewNode
	withLabels         = fledgedtest.WithLabels
	notReady           = fledgedtest.NotReady
	withNodeImages     = fledgedtest.WithNodeImages
	withRuntime        = fledgedtest.WithRuntime
	withTaints         = fledgedtest.WithTaints
	terminatedOK       = fledgedtest.TerminatedOK
	waiting            = fledgedtest.Waiting
)

// --- fixture ---

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
	rvSeq    int
	uidSeq   int
	// eventsAsked lists the namespaces whose events informer the
	// controller made.
	eventsAsked []string
	// tr is the golden trace of the passes (trace_test.go).
	tr *trace
}

// listedInformer is the fixture's events informer: catchUp fills its
// cache, as if it had listed and watched them; it never runs.
type listedInformer struct{ cache.SharedIndexInformer }

func (listedInformer) RunWithContext(context.Context) {}
func (listedInformer) Run(<-chan struct{})            {}
func (listedInformer) HasSynced() bool                { return true }

func newFixture(t *testing.T, cfg Config, caches []*v1alpha2.ImageCache, nodes ...*corev1.Node) *fixture {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	f := &fixture{t: t, ctx: ctx, clock: clocktesting.NewFakeClock(t0), recorder: record.NewFakeRecorder(1000), tr: newTrace(t)}
	var kubeObjs, icObjs []runtime.Object
	for _, n := range nodes {
		kubeObjs = append(kubeObjs, n)
	}
	for _, ic := range caches {
		icObjs = append(icObjs, ic)
	}
	f.kube = kubefake.NewClientset(kubeObjs...)
	f.client = fledgedfake.NewSimpleClientset(icObjs...)
	// The API server gives created Jobs a UID and a creation time.
	f.kube.PrependReactor("create", "jobs", func(action core.Action) (bool, runtime.Object, error) {
		job := action.(core.CreateAction).GetObject().(*batchv1.Job)
		f.uidSeq++
		job.UID = types.UID(fmt.Sprintf("job-uid-%d", f.uidSeq))
		job.CreationTimestamp = metav1.NewTime(f.clock.Now())
		f.tr.named(job)
		return false, nil, nil
	})
	// It gives every written ImageCache a new resourceVersion.
	f.client.PrependReactor("update", "imagecaches", func(action core.Action) (bool, runtime.Object, error) {
		f.rvSeq++
		action.(core.UpdateAction).GetObject().(*v1alpha2.ImageCache).ResourceVersion = fmt.Sprintf("%d", f.rvSeq)
		return false, nil, nil
	})
	// And every written slice of a ledger.
	for _, verb := range []string{"create", "update"} {
		f.client.PrependReactor(verb, "imagecacheslices", func(action core.Action) (bool, runtime.Object, error) {
			f.rvSeq++
			action.(interface{ GetObject() runtime.Object }).GetObject().(*v1alpha2.ImageCacheSlice).ResourceVersion = fmt.Sprintf("%d", f.rvSeq)
			return false, nil, nil
		})
	}
	// First of all, the trace sees each write as the controller made it.
	f.kube.PrependReactor("*", "*", f.tr.record)
	f.client.PrependReactor("*", "*", f.tr.record)
	f.restart(cfg)
	return f
}

// restart builds a new controller, with new informers, on the same API state:
// what a restarted process (or a new leader) starts from.
func (f *fixture) restart(cfg Config) {
	f.t.Helper()
	f.kubeInf = kubeinformers.NewSharedInformerFactory(f.kube, 0)
	f.icInf = icinformers.NewSharedInformerFactory(f.client, 0)
	events := func(ns, reason string) cache.SharedIndexInformer {
		if reason == reasons.Pulling {
			f.eventsAsked = append(f.eventsAsked, ns)
		}
		return listedInformer{f.kubeInf.Core().V1().Events().Informer()}
	}
	c, err := New(f.ctx, cfg, f.kube, f.client, f.icInf.Kubefledged().V1alpha2().ImageCaches(),
		f.icInf.Kubefledged().V1alpha2().ImageCacheSlices(), f.kubeInf.Core().V1().Nodes(), f.kubeInf.Batch().V1().Jobs(), f.kubeInf.Core().V1().Pods(), events,
		tracingRecorder{f.recorder, f.tr}, f.clock)
	if err != nil {
		f.t.Fatal(err)
	}
	f.c = c
	f.catchUp()
	f.clearActions()
}

// catchUp makes the informer caches show what the fake API server holds, as
// the informers would after their watch events.
func (f *fixture) catchUp() {
	f.t.Helper()
	ics, _ := f.client.KubefledgedV1alpha2().ImageCaches("").List(f.ctx, metav1.ListOptions{})
	replace(f.t, f.icInf.Kubefledged().V1alpha2().ImageCaches().Informer().GetIndexer(), ics.Items)
	f.catchUpSlices()
	// Nodes, Jobs, pods and events as the binary's informers keep them
	// (TrimForCache).
	nodes, _ := f.kube.CoreV1().Nodes().List(f.ctx, metav1.ListOptions{})
	replace(f.t, f.kubeInf.Core().V1().Nodes().Informer().GetIndexer(), trimmed(nodes.Items))
	jobs, _ := f.kube.BatchV1().Jobs("").List(f.ctx, metav1.ListOptions{})
	cached := trimmed(jobs.Items)
	replace(f.t, f.kubeInf.Batch().V1().Jobs().Informer().GetIndexer(), cached)
	for _, job := range cached {
		f.c.throttle.Observe(job.(*batchv1.Job), false)
	}
	// Events through the tracker: a test counts the controller's own lists.
	obj, err := f.kube.Tracker().List(corev1.SchemeGroupVersion.WithResource("events"), corev1.SchemeGroupVersion.WithKind("Event"), "")
	if err != nil {
		f.t.Fatal(err)
	}
	replace(f.t, f.kubeInf.Core().V1().Events().Informer().GetIndexer(), trimmed(obj.(*corev1.EventList).Items))
	pods, _ := f.kube.CoreV1().Pods("").List(f.ctx, metav1.ListOptions{})
	cachedPods := trimmed(pods.Items)
	replace(f.t, f.kubeInf.Core().V1().Pods().Informer().GetIndexer(), cachedPods)
	for _, pod := range cachedPods {
		f.c.podChanged(pod, false)
	}
}

// trimmed returns copies of the items as TrimForCache leaves them.
func trimmed[T any](items []T) []any {
	out := make([]any, 0, len(items))
	for i := range items {
		obj, err := trim.ForCache(any(&items[i]))
		if err != nil {
			panic(err)
		}
		out = append(out, obj)
	}
	return out
}

// catchUpSlices makes the slices' informer show what the fake API server
// holds, with the events it would deliver.
func (f *fixture) catchUpSlices() {
	f.t.Helper()
	idx := f.icInf.Kubefledged().V1alpha2().ImageCacheSlices().Informer().GetIndexer()
	before := idx.List()
	sls, _ := f.client.KubefledgedV1alpha2().ImageCacheSlices("").List(f.ctx, metav1.ListOptions{})
	replace(f.t, idx, sls.Items)
	if f.c == nil {
		return
	}
	for _, obj := range before {
		if _, ok, _ := idx.Get(obj); !ok {
			f.c.sliceChanged(obj, true)
		}
	}
	for i := range sls.Items {
		f.c.sliceChanged(&sls.Items[i], false)
	}
}

// catchUpImageCaches makes only the ImageCache informer show what the fake
// API server holds: the Job informer stays behind.
func (f *fixture) catchUpImageCaches() {
	f.t.Helper()
	ics, _ := f.client.KubefledgedV1alpha2().ImageCaches("").List(f.ctx, metav1.ListOptions{})
	replace(f.t, f.icInf.Kubefledged().V1alpha2().ImageCaches().Informer().GetIndexer(), ics.Items)
	f.catchUpSlices()
}

func replace[T any](t *testing.T, idx cache.Indexer, items []T) {
	t.Helper()
	objs := make([]any, 0, len(items))
	for i := range items {
		if obj, ok := any(items[i]).(runtime.Object); ok {
			objs = append(objs, obj)
			continue
		}
		objs = append(objs, &items[i])
	}
	if err := idx.Replace(objs, ""); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) clearActions() {
	f.kube.ClearActions()
	f.client.ClearActions()
}

// sync runs one sync of the cache, then lets the informers catch up. It
// checks the whole list of writes the sync made against want (none when
// want is empty), as "verb resource[/subresource]" with "*N" for N alike, in
// any order: an unexpected write fails the test. It returns the writes.
func (f *fixture) sync(name string, want ...string) ([]core.Action, time.Duration) {
	f.t.Helper()
	f.clearActions() // what the test did before is not the sync's
	after, err := f.pass(name)
	if err != nil {
		f.t.Fatalf("sync %s: %v", name, err)
	}
	w := f.writes()
	f.expectWrites(w, want...)
	f.catchUp()
	return w, after
}

// syncOnly is sync for a pass whose number of writes varies (a loop, a
// helper shared by tests): each write must be of one of the kinds given.
func (f *fixture) syncOnly(name string, kinds ...string) ([]core.Action, time.Duration) {
	f.t.Helper()
	f.clearActions()
	after, err := f.pass(name)
	if err != nil {
		f.t.Fatalf("sync %s: %v", name, err)
	}
	w := f.writes()
	for _, d := range writeList(w) {
		if !slices.Contains(kinds, d) {
			f.t.Errorf("WRITES %s: got [%s], want only [%s]", f.caller(), strings.Join(compactWrites(writeList(w)), " | "), strings.Join(kinds, " | "))
			break
		}
	}
	f.catchUp()
	return w, after
}

// pass runs one sync of the cache, and adds it to the test's trace.
func (f *fixture) pass(name string) (time.Duration, error) {
	f.tr.begin()
	after, err := f.c.sync(f.ctx, cache.ObjectName{Namespace: testNS, Name: name})
	f.tr.end(name, after, err)
	return after, err
}
