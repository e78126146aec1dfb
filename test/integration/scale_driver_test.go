package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"

	"kubefledged.io/kube-fledged/pkg/fledgedtest"
)

// The Job driver of TestLedgerScale runs as a process of its own, this
// test binary started again with these variables, so that the test's
// process holds the controller alone and its peak memory is the
// controller's.
const (
	driveNamespaceEnv  = "KUBE_FLEDGED_DRIVE_NAMESPACE"
	driveKubeconfigEnv = "KUBE_FLEDGED_DRIVE_KUBECONFIG"
)

// startDriver starts the Job driver (driveJobs) on a namespace, in a
// process of its own. stop stops it, by its PID, and returns the most Jobs
// it saw at once; it fails the test if the driver failed a write. A test
// that ends first stops it too.
func startDriver(t *testing.T, ns string) (stop func() int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), driveNamespaceEnv+"="+ns, driveKubeconfigEnv+"="+cp.Kubeconfig)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	most := 0
	stop = func() int {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				err = fmt.Errorf("did not stop within 30s: %v", <-done)
			}
			if err != nil {
				t.Errorf("the Job driver: %v\n%s", err, tail(errOut.String(), 20))
			}
			most, _ = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(out.String(), "most-jobs ")))
		})
		return most
	}
	t.Cleanup(func() { stop() })
	return stop
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// driveMain is the Job driver's process: it drives the Jobs of
// $KUBE_FLEDGED_DRIVE_NAMESPACE until SIGTERM, then prints the most Jobs
// it saw at once; it exits 1 if a write failed.
func driveMain() int {
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv(driveKubeconfigEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg.QPS, cfg.Burst = 5000, 5000
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	var failed atomic.Int64
	report := func(format string, args ...any) {
		if ctx.Err() == nil && failed.Add(1) <= 20 {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		}
	}
	most := driveJobs(ctx, kubernetes.NewForConfigOrDie(cfg), os.Getenv(driveNamespaceEnv), report)
	fmt.Printf("most-jobs %d\n", most)
	if n := failed.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "%d writes failed\n", n)
		return 1
	}
	return 0
}

// driveJobs plays, from a watch of the namespace's Jobs, the kubelet and
// the garbage collector (the test's control plane runs neither): an
// active Job's pod succeeds and the Job completes, and a deleted Job's pod
// goes; 64 at a time, until ctx ends. A list of every Job at each look
// would grow with the Jobs the cache keeps. It returns the most Jobs it
// saw at once.
func driveJobs(ctx context.Context, client kubernetes.Interface, ns string, report func(string, ...any)) int {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
	jobs := factory.Batch().V1().Jobs().Informer()
	queue := workqueue.NewTyped[string]()
	var live, most atomic.Int64
	_, err := jobs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			most.Store(max(most.Load(), live.Add(1)))
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
		report("%v", err)
		return 0
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
				driveJob(ctx, client, jobs.GetStore(), ns, key, report)
				queue.Done(key)
			}
		})
	}
	<-ctx.Done()
	queue.ShutDown()
	wg.Wait()
	factory.Shutdown()
	return int(most.Load())
}

// driveJob completes the Job a "complete/NAME" key names, if it is still
// active, or deletes the pod of the deleted Job a "gc/NAME" key names.
func driveJob(ctx context.Context, client kubernetes.Interface, store cache.Store, ns, key string, report func(string, ...any)) {
	if name, ok := strings.CutPrefix(key, "gc/"); ok {
		err := client.CoreV1().Pods(ns).Delete(ctx, name+"-pod", metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			report("deleting the pod of %s: %v", name, err)
		}
		return
	}
	name, _ := strings.CutPrefix(key, "complete/")
	obj, ok, _ := store.GetByKey(ns + "/" + name)
	if !ok {
		return
	}
	if job := obj.(*batchv1.Job); isActive(job) && job.DeletionTimestamp == nil {
		completeJobWith(ctx, client, *job, report)
	}
}

// completeJobWith is completeJob through a client of its own (the bench's
// fast one): the pod, succeeded, and the Job complete.
func completeJobWith(ctx context.Context, client kubernetes.Interface, job batchv1.Job, report func(string, ...any)) {
	now := time.Now()
	pod := fledgedtest.Succeeded(fledgedtest.PodOf(&job, "pod"), now)
	status := pod.Status
	made, err := client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err == nil {
		made.Status = status
		_, err = client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, made, metav1.UpdateOptions{})
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		report("pod of %s: %v", job.Name, err)
		return
	}
	cur := job.DeepCopy()
	cur.Status.Conditions = nil
	if _, err := client.BatchV1().Jobs(job.Namespace).UpdateStatus(ctx, fledgedtest.Complete(cur, now), metav1.UpdateOptions{}); err != nil &&
		!apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		report("completing %s: %v", job.Name, err)
	}
}

// resetPeakRSS makes this process's peak resident memory (VmHWM) start
// again from its resident memory now.
func resetPeakRSS(t *testing.T) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("resetting the peak memory: %v (the peak counts the nodes' creation)", err)
	}
}
