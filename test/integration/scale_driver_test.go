package integration

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"kubefledged.io/kube-fledged/pkg/fledgedtest"
)

// mostJobs is the most Jobs the driver saw at once in its namespace.
var mostJobs atomic.Int64

// driveJobs plays, from a watch of the namespace's Jobs, the kubelet and
// the garbage collector (the test's control plane runs neither): an
// active Job's pod succeeds and the Job completes, and a deleted Job's pod
// goes; 64 at a time. A list of every Job at each look would grow with the
// Jobs the cache keeps. It returns what stops it.
func driveJobs(t *testing.T, client kubernetes.Interface, ns string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
	jobs := factory.Batch().V1().Jobs().Informer()
	queue := workqueue.NewTyped[string]()
	var live atomic.Int64
	_, err := jobs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			mostJobs.Store(max(mostJobs.Load(), live.Add(1)))
			queue.Add("complete/" + obj.(*batchv1.Job).Name)
		},
		UpdateFunc: func(_, obj any) { queue.Add("complete/" + obj.(*batchv1.Job).Name) },
		DeleteFunc: func(obj any) {
			live.Add(-1)
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if job, ok := obj.(*batchv1.Job); ok {
				queue.Add("gc/" + job.Name)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				key, quit := queue.Get()
				if quit {
					return
				}
				driveJob(ctx, t, client, jobs.GetStore(), ns, key)
				queue.Done(key)
			}
		})
	}
	return func() {
		cancel()
		queue.ShutDown()
		wg.Wait()
		factory.Shutdown()
	}
}

// driveJob completes the Job a "complete/NAME" key names, if it is still
// active, or deletes the pod of the deleted Job a "gc/NAME" key names.
func driveJob(ctx context.Context, t *testing.T, client kubernetes.Interface, store cache.Store, ns, key string) {
	if name, ok := strings.CutPrefix(key, "gc/"); ok {
		err := client.CoreV1().Pods(ns).Delete(ctx, name+"-pod", metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
			t.Errorf("deleting the pod of %s: %v", name, err)
		}
		return
	}
	name, _ := strings.CutPrefix(key, "complete/")
	obj, ok, _ := store.GetByKey(ns + "/" + name)
	if !ok {
		return
	}
	if job := obj.(*batchv1.Job); isActive(job) && job.DeletionTimestamp == nil {
		completeJobWith(ctx, t, client, *job)
	}
}

// completeJobWith is completeJob through a client of its own (the bench's
// fast one): the pod, succeeded, and the Job complete.
func completeJobWith(ctx context.Context, t *testing.T, client kubernetes.Interface, job batchv1.Job) {
	now := time.Now()
	pod := fledgedtest.Succeeded(fledgedtest.PodOf(&job, "pod"), now)
	status := pod.Status
	made, err := client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err == nil {
		made.Status = status
		_, err = client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, made, metav1.UpdateOptions{})
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		if ctx.Err() == nil {
			t.Errorf("pod of %s: %v", job.Name, err)
		}
		return
	}
	cur := job.DeepCopy()
	cur.Status.Conditions = nil
	if _, err := client.BatchV1().Jobs(job.Namespace).UpdateStatus(ctx, fledgedtest.Complete(cur, now), metav1.UpdateOptions{}); err != nil &&
		!apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
		t.Errorf("completing %s: %v", job.Name, err)
	}
}
