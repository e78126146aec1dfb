package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/pkg/options"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// scaleRun is what TestLedgerScale measures.
type scaleRun struct {
	Nodes, Images, Pulls int
	NodesSeconds         float64 `json:"nodesSeconds"`
	SucceededSeconds     float64 `json:"succeededSeconds"`
	// Failed counts the pulls that failed (the test bed fell behind).
	Failed int `json:"failed,omitempty"`
	// MostJobs is the most Jobs the namespace held at once.
	MostJobs        int     `json:"mostJobs"`
	Slices          int     `json:"slices"`
	LargestSliceKiB float64 `json:"largestSliceKiB"`
	AllSlicesKiB    float64 `json:"allSlicesKiB"`
	StatusKiB       float64 `json:"statusKiB"`
	// StatusBytes and SliceBytes are what the controller wrote to the
	// cache's status and its slices (kubefledged_api_request_bytes_total).
	StatusBytes   float64        `json:"statusBytes"`
	SliceBytes    float64        `json:"sliceBytes"`
	BytesPerPull  float64        `json:"bytesPerPull"`
	StatusWrites  int            `json:"statusWrites"`
	SliceWrites   int            `json:"sliceWrites"`
	Requests      map[string]int `json:"requests"`
	PeakRSSMiB    float64        `json:"peakRSSMiB"`
	PeakHeapMiB   float64        `json:"peakHeapMiB"`
	ControllerQPS float32        `json:"controllerQPS"`
	Plugin        pluginRun      `json:"plugin"`
	// CPUProfile and HeapProfile are the controller's profiles: 30 s of
	// CPU a quarter in, the heap near its peak.
	CPUProfile  string `json:"cpuProfile,omitempty"`
	HeapProfile string `json:"heapProfile,omitempty"`
}

// TestLedgerScale: one cache of KUBE_FLEDGED_SCALE_IMAGES images (10) over
// KUBE_FLEDGED_SCALE_NODES nodes (65,000 in make bench-scale), against the
// real API server and etcd, the controller in this process, the pulls'
// outcomes played by the test from a process of its own (startDriver: each
// Job's pod succeeds, and a deleted Job's pod goes): the cache Succeeded,
// its slices, the bytes written per pull, the controller's peak memory
// (this process's, from after the nodes were made), the most Jobs at once,
// and kubectl fledged nodes over it; _output/bench/scale.json. A
// measurement: the figures go to the notes; the outcome, the slices and
// the Jobs at once are asserted.
func TestLedgerScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("KUBE_FLEDGED_SCALE_NODES"))
	if n == 0 {
		t.Skip("a measurement: make bench-scale runs it (KUBE_FLEDGED_SCALE_NODES)")
	}
	images := 10
	if v, _ := strconv.Atoi(os.Getenv("KUBE_FLEDGED_SCALE_IMAGES")); v > 0 {
		images = v
	}
	ns := testNamespace(t, "ledger-scale")
	// 1,000 Jobs in flight: on two cores, with 2,000 the driver fell
	// behind and pods were not made within --job-start-deadline.
	const maxInFlight, maxFinished = 1000, 2000
	cfg := *cp.Config
	cfg.QPS, cfg.Burst = 5000, 5000
	fast := kubernetes.NewForConfigOrDie(&cfg)
	r := scaleRun{Nodes: n, Images: images, Pulls: n * images, ControllerQPS: 500, Requests: map[string]int{}}

	start := time.Now()
	makeNodes(t, fast, ns, n)
	r.NodesSeconds = time.Since(start).Seconds()
	t.Logf("%d nodes in %.0fs", n, r.NodesSeconds)

	resetPeakRSS(t) // the nodes were made by this process too
	runController(t, func(o *options.Options) {
		o.KubeAPIQPS, o.KubeAPIBurst = r.ControllerQPS, 1000
		o.MaxInFlightJobs, o.MaxFinishedJobs = maxInFlight, maxFinished
	})
	var imgs []string
	for i := range images {
		imgs = append(imgs, fmt.Sprintf("registry.example/team-%02d/service-%02d:v1.%d", i%10, i, i))
	}
	counter := func(verb, resource string) float64 {
		return testutil.ToFloat64(metrics.APIRequestBytesTotal.WithLabelValues(verb, resource))
	}
	statusBefore := counter("update", "imagecaches/status")
	slicesBefore := counter("create", "imagecacheslices") + counter("update", "imagecacheslices")
	start = time.Now()
	createCache(t, ns, "wide", entry(map[string]v1alpha2.LabelValue{"scale": v1alpha2.LabelValue(ns)}, imgs...))
	var peakHeap atomic.Uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		var profiled uint64 // the heap when last profiled
		for {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Second):
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peakHeap.Load() {
					if ms.HeapAlloc > profiled*11/10 {
						profiled = ms.HeapAlloc
						saveHeapProfile(t) // near the peak: what holds the memory
					}
					peakHeap.Store(ms.HeapAlloc)
				}
			}
		}
	}()
	stopDriver := startDriver(t, ns)
	var ic *v1alpha2.ImageCache
	last := time.Now()
	stopCPU := func() {}
	defer func() { stopCPU() }()
	waitFor(t, 90*time.Minute, "the cache over every node to succeed", func() (bool, error) {
		ic = cacheStatus(t, ns, "wide")
		if int(ic.Status.Pulls.Succeeded) >= r.Pulls/4 && r.CPUProfile == "" {
			// A quarter in: 30 s of the controller's CPU (this
			// process's; the driver has its own).
			r.CPUProfile, stopCPU = startCPUProfile(t, 30*time.Second)
		}
		if time.Since(last) > time.Minute {
			last = time.Now()
			t.Logf("%.0fs: %s", time.Since(start).Seconds(), ic.Status.Message)
		}
		if ic.Status.Status == v1alpha2.ImageCacheActionStatusFailed && ic.Status.Pulls.Succeeded == 0 {
			t.Fatalf("the cache failed: %s; failures: %s", ic.Status.Message, someFailures(ic.Status.Failures, 5))
		}
		// Failed with pulls done: the test bed fell behind (a pod not
		// made within --job-start-deadline); measured all the same, and
		// said below.
		return ic.Status.Status == v1alpha2.ImageCacheActionStatusFailed ||
			ic.Status.Status == v1alpha2.ImageCacheActionStatusSucceeded && int(ic.Status.Pulls.Succeeded) == r.Pulls, nil
	})
	close(done)
	r.SucceededSeconds = time.Since(start).Seconds()
	r.Failed = int(ic.Status.Pulls.Failed)
	if r.Failed > 0 {
		t.Errorf("%d pulls failed (the test bed fell behind?): %s; %s", r.Failed, ic.Status.Message, someFailures(ic.Status.Failures, 5))
	}
	r.MostJobs = stopDriver()
	r.StatusBytes = counter("update", "imagecaches/status") - statusBefore
	r.SliceBytes = counter("create", "imagecacheslices") + counter("update", "imagecacheslices") - slicesBefore
	r.BytesPerPull = (r.StatusBytes + r.SliceBytes) / float64(r.Pulls)
	r.PeakHeapMiB = float64(peakHeap.Load()) / (1 << 20)
	r.PeakRSSMiB = peakRSS()
	r.HeapProfile = filepath.Join(projectRoot, "_output", "bench", "scale-heap.pb.gz")
	for _, vr := range []struct{ verb, resource string }{{"update", "imagecaches/status"}, {"create", "imagecacheslices"},
		{"update", "imagecacheslices"}, {"delete", "imagecacheslices"}, {"create", "jobs"}, {"delete", "jobs"}, {"patch", "jobs"},
		{"list", "nodes"}, {"watch", "nodes"}, {"list", "jobs"}, {"patch", "imagecaches"}} {
		if v := testutil.ToFloat64(metrics.APIRequestsTotal.WithLabelValues(vr.verb, vr.resource)); v > 0 {
			r.Requests[vr.verb+" "+vr.resource] = int(v)
		}
	}
	r.StatusWrites = r.Requests["update imagecaches/status"]
	r.SliceWrites = r.Requests["create imagecacheslices"] + r.Requests["update imagecacheslices"]
	sls := slicesOf(t, ic)
	r.Slices = len(sls)
	for _, sl := range sls {
		b, _ := json.Marshal(sl)
		r.AllSlicesKiB += float64(len(b)) / 1024
		r.LargestSliceKiB = max(r.LargestSliceKiB, float64(len(b))/1024)
	}
	raw, _ := json.Marshal(ic)
	r.StatusKiB = float64(len(raw)) / 1024
	t.Logf("Succeeded in %.0fs: %d slices (largest %.0f KiB, all %.0f KiB), status %.1f KiB; %.0f status bytes and %.0f slice bytes, "+
		"%.1f bytes per pull; %d status writes, %d slice writes; peak RSS %.0f MiB, heap %.0f MiB; at most %d Jobs at once", r.SucceededSeconds, r.Slices,
		r.LargestSliceKiB, r.AllSlicesKiB, r.StatusKiB, r.StatusBytes, r.SliceBytes, r.BytesPerPull, r.StatusWrites, r.SliceWrites,
		r.PeakRSSMiB, r.PeakHeapMiB, r.MostJobs)
	// The finished Jobs past --max-finished-jobs go as their outcomes are
	// written: the Jobs at once stay near the Jobs in flight and the
	// finished ones kept (a pass's worth more, not yet deleted).
	if most := maxInFlight + maxFinished + 1000; r.MostJobs > most {
		t.Errorf("%d Jobs at once, want at most %d", r.MostJobs, most)
	}
	// Nodes come into the ledger a wave of Jobs at a time: as the
	// EndpointSlice controller does, a wave fills the slices it changes
	// anyway, or the one it fits best, before new ones, so there may be a
	// few more slices than the fewest.
	if fewest := (n + v1alpha2.MaxSliceNodes - 1) / v1alpha2.MaxSliceNodes; r.Slices < fewest || r.Slices > 2*fewest {
		t.Errorf("%d slices, want %d to %d", r.Slices, fewest, 2*fewest)
	}

	bin := buildPlugin(t)
	r.Plugin = timePlugin(t, bin, []string{"nodes", "wide", "-n", ns})
	t.Logf("kubectl fledged nodes: %d lines, first after %.2fs, all after %.2fs, peak RSS %.1f MiB", r.Plugin.Lines,
		r.Plugin.FirstLineSec, r.Plugin.TotalSec, r.Plugin.PeakRSSMiB)
	if r.Plugin.Lines != n+1 {
		t.Errorf("kubectl fledged nodes printed %d lines, want %d", r.Plugin.Lines, n+1)
	}
	out := filepath.Join(projectRoot, "_output", "bench")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "scale.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// makeNodes makes n Ready nodes labelled scale=label, 64 at a time, and
// deletes them when the test ends.
func makeNodes(t *testing.T, client kubernetes.Interface, label string, n int) {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() {
		_ = client.CoreV1().Nodes().DeleteCollection(context.Background(), metav1.DeleteOptions{},
			metav1.ListOptions{LabelSelector: "scale=" + label})
	})
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var failed atomic.Int32
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			name := fmt.Sprintf("ip-10-%d-%d-%d.eu-west-1.compute.internal", i/65536, (i/256)%256, i%256)
			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
				puller.HostnameLabel: name, "scale": label, corev1.LabelOSStable: "linux"}}}
			made, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
			if err == nil {
				made.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
					Reason: "KubeletReady", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
				_, err = client.CoreV1().Nodes().UpdateStatus(ctx, made, metav1.UpdateOptions{})
			}
			if err != nil && failed.Add(1) <= 3 {
				t.Errorf("node %s: %v", name, err)
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.FailNow()
	}
}

// startCPUProfile profiles this process's CPU for d, into
// _output/bench/scale-cpu.pb.gz, and returns the file and what stops it
// early.
func startCPUProfile(t *testing.T, d time.Duration) (string, func()) {
	file := filepath.Join(projectRoot, "_output", "bench", "scale-cpu.pb.gz")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Log(err)
		return "none", func() {}
	}
	f, err := os.Create(file)
	if err != nil {
		t.Log(err)
		return "none", func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Log(err)
		f.Close()
		return "none", func() {}
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	}
	time.AfterFunc(d, stop)
	return file, stop
}

// saveHeapProfile writes this process's heap profile (as of the last
// garbage collection) to _output/bench/scale-heap.pb.gz.
func saveHeapProfile(t *testing.T) {
	dir := filepath.Join(projectRoot, "_output", "bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Log(err)
		return
	}
	f, err := os.Create(filepath.Join(dir, "scale-heap.pb.gz"))
	if err != nil {
		t.Log(err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Log(err)
	}
}

// someFailures lists up to n of a status's failures.
func someFailures(failures map[string]v1alpha2.NodeReasonMessageList, n int) string {
	var out []string
	for img, list := range failures {
		for _, f := range list {
			if len(out) == n {
				return strings.Join(out, "; ")
			}
			out = append(out, fmt.Sprintf("%s on %s: %s %s", img, f.Node, f.Reason, f.Message))
		}
	}
	return strings.Join(out, "; ")
}

// peakRSS is this process's peak resident memory (VmHWM), in MiB.
func peakRSS() float64 { return float64(vmHWM(os.Getpid())) / 1024 }
