package imagecache

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	"kubefledged.io/kube-fledged/pkg/ledger"
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
	f.client = fledgedfake.NewClientset(icObjs...)
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
		f.kubeInf.Core().V1().Nodes(), f.kubeInf.Batch().V1().Jobs(), f.kubeInf.Core().V1().Pods(), events,
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

// catchUpImageCaches makes only the ImageCache informer show what the fake
// API server holds: the Job informer stays behind.
func (f *fixture) catchUpImageCaches() {
	f.t.Helper()
	ics, _ := f.client.KubefledgedV1alpha2().ImageCaches("").List(f.ctx, metav1.ListOptions{})
	replace(f.t, f.icInf.Kubefledged().V1alpha2().ImageCaches().Informer().GetIndexer(), ics.Items)
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

// caller names the test line that called the fixture.
func (f *fixture) caller() string {
	for i := 1; i < 8; i++ {
		if _, file, n, ok := goruntime.Caller(i); ok && !strings.HasSuffix(file, "fixture_test.go") {
			return fmt.Sprintf("%s:%d", filepath.Base(file), n)
		}
	}
	return ""
}

// expectWrites fails the test, naming the test line that synced, when the
// writes are not those wanted.
func (f *fixture) expectWrites(writes []core.Action, want ...string) {
	f.t.Helper()
	if got, wanted := writeList(writes), expandWrites(want); !slices.Equal(got, wanted) {
		f.t.Errorf("WRITES %s: got [%s], want [%s]", f.caller(), strings.Join(compactWrites(got), " | "), strings.Join(want, " | "))
	}
}

// writeList describes each write, sorted.
func writeList(writes []core.Action) []string {
	out := make([]string, 0, len(writes))
	for _, a := range writes {
		d := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			d += "/" + a.GetSubresource()
		}
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// expandWrites expands "X*N" into N times X, sorted.
func expandWrites(want []string) []string {
	var out []string
	for _, w := range want {
		d, n := w, 1
		if i := strings.LastIndex(w, "*"); i >= 0 {
			if k, err := strconv.Atoi(w[i+1:]); err == nil {
				d, n = w[:i], k
			}
		}
		for range n {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

// compactWrites is the inverse of expandWrites, for messages.
func compactWrites(list []string) []string {
	var out []string
	for i := 0; i < len(list); {
		j := i
		for j < len(list) && list[j] == list[i] {
			j++
		}
		if j-i > 1 {
			out = append(out, fmt.Sprintf("%s*%d", list[i], j-i))
		} else {
			out = append(out, list[i])
		}
		i = j
	}
	return out
}

// syncStarted runs the sync that starts an operation, checks that it only
// recorded the start (Jobs are named after it, so none may exist before it
// is recorded), and returns the writes of the sync after it, checked
// against want.
func (f *fixture) syncStarted(name string, want ...string) ([]core.Action, time.Duration) {
	f.t.Helper()
	writes, after := f.sync(name, wStatus)
	if st := statusUpdates(writes); len(st) == 1 && st[0].Status.Status == v1alpha2.ImageCacheActionStatusProcessing && after != 0 {
		f.t.Errorf("after starting an operation: requeue after %v, want none (the informer's update event brings it back)", after)
	}
	return f.sync(name, want...)
}

// syncStartedOnly is syncStarted, with the pass after it checked as
// syncOnly checks it.
func (f *fixture) syncStartedOnly(name string, kinds ...string) ([]core.Action, time.Duration) {
	f.t.Helper()
	f.sync(name, wStatus)
	return f.syncOnly(name, kinds...)
}

// events returns the events recorded since the last call.
func (f *fixture) events() []string { return fledgedtest.Events(f.recorder) }

// expectEvent fails the test, with what was recorded, unless an event
// starting with prefix was recorded since the last call.
func (f *fixture) expectEvent(prefix string) {
	f.t.Helper()
	evs := f.events()
	for _, e := range evs {
		if strings.HasPrefix(e, prefix) {
			return
		}
	}
	f.t.Errorf("no event %q; recorded %q", prefix, evs)
}

// The writes a sync makes, for expectWrites.
const (
	wStatus      = "update imagecaches/status"
	wCreateJob   = "create jobs"
	wDeleteJob   = "delete jobs"
	wPatchJob    = "patch jobs"
	wAnnotation  = "patch imagecaches"
	wCreateEvent = "create events"
)

// writes returns the write actions both clients saw since the last call.
func (f *fixture) writes() []core.Action {
	var out []core.Action
	for _, a := range append(f.kube.Actions(), f.client.Actions()...) {
		switch a.GetVerb() {
		case "get", "list", "watch":
			continue
		}
		out = append(out, a)
	}
	f.clearActions()
	return out
}

func (f *fixture) imageCache(name string) *v1alpha2.ImageCache {
	f.t.Helper()
	ic, err := f.client.KubefledgedV1alpha2().ImageCaches(testNS).Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return ic
}

// edit changes an ImageCache as a user would, and lets the informers see it.
func (f *fixture) edit(name string, change func(*v1alpha2.ImageCache)) {
	f.t.Helper()
	cur := f.imageCache(name)
	change(cur)
	if _, err := f.client.KubefledgedV1alpha2().ImageCaches(testNS).Update(f.ctx, cur, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.catchUp()
	f.clearActions()
}

// annotate sets an annotation on an ImageCache (a user asking for an operation).
func (f *fixture) annotate(name, key string) {
	f.t.Helper()
	f.edit(name, func(ic *v1alpha2.ImageCache) { ic.Annotations = map[string]string{key: ""} })
}

func (f *fixture) jobs() []batchv1.Job {
	f.t.Helper()
	list, err := f.kube.BatchV1().Jobs(testNS).List(f.ctx, metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	// The delete Jobs, in the controller's namespace.
	deletes, err := f.kube.BatchV1().Jobs(testControllerNS).List(f.ctx, metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	list.Items = append(list.Items, deletes.Items...)
	sort.Slice(list.Items, func(i, j int) bool {
		return list.Items[i].Annotations[puller.AnnotationNode]+list.Items[i].Name < list.Items[j].Annotations[puller.AnnotationNode]+list.Items[j].Name
	})
	return list.Items
}

// makeReady plays the kubelet of a node that turns Ready.
func (f *fixture) makeReady(node string) {
	f.t.Helper()
	n, err := f.kube.CoreV1().Nodes().Get(f.ctx, node, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	n.Status.Conditions[0].Status = corev1.ConditionTrue
	if _, err := f.kube.CoreV1().Nodes().UpdateStatus(f.ctx, n, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) updateJob(job *batchv1.Job) {
	f.t.Helper()
	if _, err := f.kube.BatchV1().Jobs(job.Namespace).Update(f.ctx, job, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.catchUp()
	f.clearActions()
}

// completeJob plays the Job controller for a Job whose containers all ran,
// and for a pull Job the kubelet, which pulled each image (none was on the
// node): its pod, and a "Pulling" event for each container.
func (f *fixture) completeJob(job batchv1.Job) {
	f.t.Helper()
	if !puller.IsDeleteJob(&job) {
		f.pulledBy(job, jobImages(f.t, &job)...)
	}
	f.finishJob(job)
}

// completeJobPresent is completeJob where every image was on the node
// already: the kubelet pulled none.
func (f *fixture) completeJobPresent(job batchv1.Job) {
	f.t.Helper()
	f.pulledBy(job)
	f.finishJob(job)
}

// pulledBy makes sure a pull Job has its pod, its containers terminated
// well, and the kubelet's "Pulling" event for each container of the images
// pulled.
func (f *fixture) pulledBy(job batchv1.Job, pulled ...string) {
	f.t.Helper()
	pod, err := f.kube.CoreV1().Pods(job.Namespace).Get(f.ctx, job.Name+"-abcde", metav1.GetOptions{})
	if err != nil {
		states := map[string]corev1.ContainerState{}
		for _, c := range job.Spec.Template.Spec.Containers {
			states[c.Name] = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0,
				FinishedAt: metav1.NewTime(f.clock.Now())}}
		}
		pod = f.podWith(job, states)
	}
	for _, c := range job.Spec.Template.Spec.Containers {
		if !slices.Contains(pulled, c.Image) {
			continue
		}
		if _, err := f.kube.CoreV1().Events(pod.Namespace).Create(f.ctx, fledgedtest.PullingEvent(pod, c), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			f.t.Fatal(err)
		}
	}
}

// finishJob marks a Job Complete.
func (f *fixture) finishJob(job batchv1.Job) {
	f.t.Helper()
	job.Status.Conditions = append(job.Status.Conditions,
		batchv1.JobCondition{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue},
		batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue})
	job.Status.Succeeded = 1
	f.updateJob(&job)
}

// completeAll completes every active Job.
func (f *fixture) completeAll() int {
	n := 0
	for _, j := range f.jobs() {
		if puller.IsActive(&j) {
			f.completeJob(j)
			n++
		}
	}
	return n
}

// podWith plays the kubelet: the Job's pod, with the given container states.
func (f *fixture) podWith(job batchv1.Job, states map[string]corev1.ContainerState) *corev1.Pod {
	f.t.Helper()
	pod := fledgedtest.WithContainerStates(fledgedtest.PodOf(&job, "abcde"), states)
	if _, err := f.kube.CoreV1().Pods(job.Namespace).Create(f.ctx, pod, metav1.CreateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.catchUp()
	f.clearActions()
	return pod
}

// --- action helpers ---

func createdJobs(actions []core.Action) []*batchv1.Job {
	var out []*batchv1.Job
	for _, a := range actions {
		if a.GetVerb() == "create" && a.GetResource().Resource == "jobs" {
			out = append(out, a.(core.CreateAction).GetObject().(*batchv1.Job))
		}
	}
	return out
}

func statusUpdates(actions []core.Action) []*v1alpha2.ImageCache {
	var out []*v1alpha2.ImageCache
	for _, a := range actions {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" {
			out = append(out, a.(core.UpdateAction).GetObject().(*v1alpha2.ImageCache))
		}
	}
	return out
}

func describe(actions []core.Action) string {
	var parts []string
	for _, a := range actions {
		s := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			s += "/" + a.GetSubresource()
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func jobImages(t *testing.T, job *batchv1.Job) []string {
	t.Helper()
	var imgs []string
	if err := json.Unmarshal([]byte(job.Annotations[puller.AnnotationImages]), &imgs); err != nil {
		t.Fatal(err)
	}
	return imgs
}

// times is n writes alike, for expectWrites.
func times(write string, n int) string { return fmt.Sprintf("%s*%d", write, n) }

// ledgers reads the ledgers the controller records.
var ledgers ledger.Store
