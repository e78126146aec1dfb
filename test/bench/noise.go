package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// NoiseResult is one binary's idle cost with and without unrelated events
// in the cluster.
type NoiseResult struct {
	Binary string
	Events int // unrelated "Pulling" events in the cluster
	// IdleRSSMiB, IdlePeakRSSMiB as in MemResult; ReadySeconds from start
	// to ready.
	IdleRSSMiB     float64
	IdlePeakRSSMiB float64
	ReadySeconds   float64
	// EventLists and EventWatches are the controller's list and watch
	// requests for events until idle.
	EventLists, EventWatches float64
}

// noise runs the unrelated-events scenario: each binary idle with no cache,
// before and after n "Pulling" events of other pods are made in a namespace
// of their own (every pod start in a cluster makes such events).
func noise(ctx context.Context, n int) []NoiseResult {
	binaries := []struct{ name, path string }{{"this tree", bin}}
	if baseline != "" {
		binaries = append([]struct{ name, path string }{{"baseline", baseline}}, binaries...)
	}
	var out []NoiseResult
	for _, events := range []int{0, n} {
		if events > 0 {
			ns := namespace(ctx, "bench-noise")
			defer deleteNamespaceOrWarn(ctx, ns)
			fmt.Printf("bench: making %d unrelated Pulling events\n", events)
			start := time.Now()
			makeEvents(ctx, ns, events)
			fmt.Printf("bench:   made in %.0fs\n", time.Since(start).Seconds())
		}
		for _, b := range binaries {
			r := noiseRun(ctx, b.name, b.path, events)
			fmt.Printf("bench:   %s with %d unrelated events: idle %.0f MiB (peak %.0f), ready in %.1fs, %v event lists, %v watches\n",
				b.name, events, r.IdleRSSMiB, r.IdlePeakRSSMiB, r.ReadySeconds, r.EventLists, r.EventWatches)
			out = append(out, r)
		}
	}
	return out
}

func noiseRun(ctx context.Context, name, path string, events int) NoiseResult {
	r := NoiseResult{Binary: name, Events: events}
	log := fmt.Sprintf("fledged-noise-%s-%d.log", strings.ReplaceAll(name, " ", "-"), events)
	start := time.Now()
	proc, addr, health := startBinary(path, log, extra...)
	defer stopFledged(proc)
	pollEvery(ctx, 200*time.Millisecond, 10*time.Minute, "the controller's caches to sync", func() bool { return ready(health) })
	r.ReadySeconds = time.Since(start).Seconds()
	time.Sleep(10 * time.Second) // idle
	r.IdlePeakRSSMiB, _ = procStats(proc.Process.Pid)
	r.IdleRSSMiB = currentRSS(proc.Process.Pid)
	for _, line := range strings.Split(scrape(addr), "\n") {
		labels, value, ok := strings.Cut(strings.TrimPrefix(line, "kubefledged_api_requests_total{"), "} ")
		if !ok || !strings.HasPrefix(line, "kubefledged_api_requests_total{") || !strings.Contains(labels, `resource="events"`) {
			continue
		}
		var v float64
		fmt.Sscan(value, &v)
		switch {
		case strings.Contains(labels, `verb="list"`):
			r.EventLists += v
		case strings.Contains(labels, `verb="watch"`):
			r.EventWatches += v
		}
	}
	return r
}

// makeEvents creates n kubelet-like "Pulling" events of other pods, in
// parallel.
func makeEvents(ctx context.Context, ns string, n int) {
	names := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range names {
				pod := fmt.Sprintf("app-%06d", i)
				_, err := kube.CoreV1().Events(ns).Create(ctx, &corev1.Event{
					ObjectMeta: metav1.ObjectMeta{Name: pod + ".pulling"},
					InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod, UID: types.UID(fmt.Sprintf("uid-%06d", i)),
						FieldPath: "spec.containers{app}"},
					Reason: "Pulling", Message: `Pulling image "registry.example/team/app:1.2.3"`, Type: corev1.EventTypeNormal,
					Source: corev1.EventSource{Component: "kubelet", Host: "node-1"},
				}, metav1.CreateOptions{})
				if err != nil {
					fmt.Printf("bench:   event %d: %v\n", i, err)
				}
			}
		})
	}
	for i := range n {
		names <- i
	}
	close(names)
	wg.Wait()
}

func noiseTable(rs []NoiseResult) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n| controller | unrelated events | idle RSS | peak RSS | ready in | event lists | event watches |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %d | %.0f MiB | %.0f MiB | %.1f s | %.0f | %.0f |\n", r.Binary, r.Events, r.IdleRSSMiB, r.IdlePeakRSSMiB,
			r.ReadySeconds, r.EventLists, r.EventWatches)
	}
	return b.String()
}
