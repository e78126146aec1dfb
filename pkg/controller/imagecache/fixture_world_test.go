package imagecache

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	core "k8s.io/client-go/testing"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/puller"
)

func (f *fixture) imageCache(name string) *v1alpha2.ImageCache {
	f.t.Helper()
	ic, err := f.client.KubefledgedV1alpha2().ImageCaches(testNS).Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return ic
}

// ledger reads a cache's ledger as the controller does, from its status and
// its slices.
func (f *fixture) ledger(name string) *ledger.Ledger {
	f.t.Helper()
	l, err := fledgedtest.LoadLedger(f.ctx, f.client, f.imageCache(name))
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

// sliceObjects lists a cache's ledger slices.
func (f *fixture) sliceObjects(name string) []*v1alpha2.ImageCacheSlice {
	f.t.Helper()
	list, err := fledgedtest.Slices(f.ctx, f.client, f.imageCache(name))
	if err != nil {
		f.t.Fatal(err)
	}
	return list
}

// entry returns a node's encoded entry in a cache's ledger, in whichever of
// its slices holds it ("" when none does).
func (f *fixture) entry(name, node string) string {
	f.t.Helper()
	for _, sl := range f.sliceObjects(name) {
		if e, ok := sl.Ledger.Nodes[node]; ok {
			return e
		}
	}
	return ""
}

// asEarlierRelease records a cache's ledger as a release before slices did:
// all of it in status.ledger (format 1), changed by change, and no slices.
func (f *fixture) asEarlierRelease(name string, change func(*v1alpha2.PullLedger)) {
	f.t.Helper()
	enc := f.ledger(name).Encode()
	change(enc)
	for _, sl := range f.sliceObjects(name) {
		if err := f.client.KubefledgedV1alpha2().ImageCacheSlices(sl.Namespace).Delete(f.ctx, sl.Name, metav1.DeleteOptions{}); err != nil {
			f.t.Fatal(err)
		}
	}
	f.edit(name, func(ic *v1alpha2.ImageCache) { ic.Status.Ledger = enc })
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
func (f *fixture) finishJob(job batchv1.Job) { f.finishJobAt(job, metav1.Time{}) }

// finishJobAt marks a Job Complete at a time (its conditions'
// LastTransitionTime; zero: none).
func (f *fixture) finishJobAt(job batchv1.Job, at metav1.Time) {
	f.t.Helper()
	job.Status.Conditions = append(job.Status.Conditions,
		batchv1.JobCondition{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: at},
		batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: at})
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
