//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"kubefledged.io/kube-fledged/pkg/puller"
)

// pullWatch counts the pull Jobs created, by cache, node and image.
type pullWatch struct {
	mu    sync.Mutex
	done  bool            // the watch ended
	seen  map[string]bool // Job UIDs
	pairs map[string]int  // "ns/cache node image"
	cache map[string]int  // "ns/cache"
}

// watchPulls watches pull Jobs in every namespace until the test ends.
func watchPulls(t *testing.T) *pullWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sel := puller.LabelComponent + "=" + puller.ComponentPull
	// From now: the Jobs there already are not counted.
	list, err := kubeClient.BatchV1().Jobs("").List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	w, err := kubeClient.BatchV1().Jobs("").Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	p := &pullWatch{seen: map[string]bool{}, pairs: map[string]int{}, cache: map[string]int{}}
	go func() {
		defer w.Stop()
		defer func() {
			p.mu.Lock()
			p.done = ctx.Err() == nil // ended before the test did
			p.mu.Unlock()
		}()
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				return
			}
			job, ok := ev.Object.(*batchv1.Job)
			if !ok || ev.Type != watch.Added {
				continue
			}
			images, err := puller.JobImages(job)
			if err != nil {
				continue
			}
			ns := job.Annotations[puller.AnnotationCacheNamespace]
			if ns == "" {
				ns = job.Namespace
			}
			c := ns + "/" + job.Annotations[puller.AnnotationCache]
			p.mu.Lock()
			if !p.seen[string(job.UID)] {
				p.seen[string(job.UID)] = true
				p.cache[c]++
				for _, img := range images {
					p.pairs[c+" "+job.Annotations[puller.AnnotationNode]+" "+img]++
				}
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// twice returns the pairs pulled more than once, and how many were pulled.
func (p *pullWatch) twice() ([]string, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for k, n := range p.pairs {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s (%d)", k, n))
		}
	}
	sort.Strings(out)
	return out, len(p.pairs)
}

// closed says whether the watch ended early.
func (p *pullWatch) closed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// of is the number of pull Jobs of a cache.
func (p *pullWatch) of(cache string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cache[cache]
}
