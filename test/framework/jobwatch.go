package framework

import (
	"context"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"kubefledged.io/kube-fledged/pkg/puller"
)

// JobWatch records every Job created in a namespace while it runs, so a test
// can prove that no (node, image) pull was asked for twice.
type JobWatch struct {
	mu    sync.Mutex
	added map[string]batchv1.Job
	w     watch.Interface
}

// WatchJobs starts recording; call Stop when done.
func WatchJobs(ctx context.Context, client kubernetes.Interface, namespace string) (*JobWatch, error) {
	w, err := client.BatchV1().Jobs(namespace).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	jw := &JobWatch{added: map[string]batchv1.Job{}, w: w}
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added {
				continue
			}
			if j, ok := ev.Object.(*batchv1.Job); ok {
				jw.mu.Lock()
				jw.added[string(j.UID)] = *j
				jw.mu.Unlock()
			}
		}
	}()
	return jw, nil
}

// Stop ends the watch.
func (jw *JobWatch) Stop() { jw.w.Stop() }

// Count is the number of Jobs created so far.
func (jw *JobWatch) Count() int {
	jw.mu.Lock()
	defer jw.mu.Unlock()
	return len(jw.added)
}

// Pairs counts, for each "node image" pair, the Jobs created to pull it.
func (jw *JobWatch) Pairs() (map[string]int, error) {
	jw.mu.Lock()
	defer jw.mu.Unlock()
	out := map[string]int{}
	for _, j := range jw.added {
		imgs, err := puller.JobImages(&j)
		if err != nil {
			return nil, err
		}
		for _, img := range imgs {
			out[j.Annotations[puller.AnnotationNode]+" "+img]++
		}
	}
	return out, nil
}

// Reset forgets the Jobs recorded so far.
func (jw *JobWatch) Reset() {
	jw.mu.Lock()
	defer jw.mu.Unlock()
	clear(jw.added)
}

// Jobs returns the Jobs created so far.
func (jw *JobWatch) Jobs() []batchv1.Job {
	jw.mu.Lock()
	defer jw.mu.Unlock()
	out := make([]batchv1.Job, 0, len(jw.added))
	for _, j := range jw.added {
		out = append(out, j)
	}
	return out
}
