// Command bench measures what caching costs as nodes and images grow, on the
// local cluster (hack/local-up.sh): time to Succeeded, the API requests the
// controller made, Jobs and Pods created, the controller's peak memory and
// CPU, and, as the floor, the same Jobs created with no controller by the
// fastest of a few strategies (floor.go). `make bench` runs it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	clientset "kubefledged.io/kube-fledged/pkg/client/clientset/versioned"
	"kubefledged.io/kube-fledged/pkg/puller"
)

type scenario struct{ Nodes, Images int }

// Result is one scenario's measurements.
type Result struct {
	Nodes, Images int
	// Flags are those added to the bench's for this run (-variants).
	Flags        string `json:",omitempty"`
	Pulls        int
	Seconds      float64
	FloorSeconds float64
	RatioToFloor float64
	// FloorStrategy is the strategy that won the floor; SimplestSeconds
	// the simplest Jobs' time by it, and RatioToSimplest ours against it.
	FloorStrategy      string
	SimplestSeconds    float64
	RatioToSimplest    float64
	Floor              Floor `json:"-"`
	JobsCreated        int
	PodsCreated        int
	FloorJobs          int
	Requests           map[string]int // "verb resource" -> count
	WriteRequests      int
	WritesPerImagePull float64
	// LedgerBytes is what the API server took in ImageCache and
	// ImageCacheSlice writes until Succeeded (bodyBytes), and
	// LedgerBytesPerPull that per (node, image) pull.
	LedgerBytes        float64
	LedgerBytesPerPull float64
	PeakRSSMiB         float64
	CPUSeconds         float64
	// ClusterCPUSeconds is what each control-plane process spent until
	// Succeeded.
	ClusterCPUSeconds map[string]float64
}

var (
	kube    kubernetes.Interface
	fledged clientset.Interface
	bin     string
	extra   []string
	outDir  string
	perJob  = 10
	// nodeImages is how many images each node reports; nodeJSONBytes the
	// size of one such Node as JSON, as measured.
	nodeImages    int
	nodeJSONBytes int
	baseline      string
	variants      []string
	pidDir        string
)

func main() {
	scenarios := flag.String("scenarios", "10x10,100x10,500x10,1000x10,100x100", "nodes x images, comma separated")
	flag.StringVar(&outDir, "out", "_output/bench", "folder for the results (Markdown, JSON) and the controller's logs")
	flag.StringVar(&bin, "fledged", "_output/bin/fledged", "the controller binary")
	flag.StringVar(&pidDir, "cluster-pids", "_output/local/pids", "the local cluster's PID files (hack/local-up.sh), to read its processes' CPU")
	joins := flag.Int("joins", 5, "node joins to time (first Job for a new node)")
	fledgedFlags := flag.String("fledged-flags", "", "more flags for the controller, space separated, such as \"--kube-api-qps=100 --profiling\"")
	flag.IntVar(&nodeImages, "node-images", 50, "images each node reports in status.images, each by tag and by digest, as a busy kubelet does")
	bare := flag.Bool("bare-nodes", false, "nodes report no images (as kwok's do), instead of -node-images")
	memNodes := flag.String("memory-nodes", "1000,3000,5000", "after the grid, the memory scenario: idle with each of these node counts (comma separated, "+
		"the default), then one cache of -memory-images images over the last count; empty skips it")
	memImages := flag.Int("memory-images", 10, "images of the memory scenario's cache")
	memTimeout := flag.Duration("memory-timeout", 30*time.Minute, "how long the memory scenario's cache may take to succeed; "+
		"past it, memory is measured on what was done (the informers and the syncs so far) and the table says so")
	flag.StringVar(&baseline, "baseline-fledged", "", "a controller binary to compare with in the memory scenario (hack/bench.sh builds one from BENCH_BASELINE)")
	variantFlags := flag.String("variants", "", "more runs of each scenario's controller against the same floor, each with these flags "+
		"added (runs separated by ';'), such as \"--max-in-flight-jobs=400;--max-in-flight-jobs=1000\"")
	chartPath := flag.String("chart", "", "where to draw the chart of time to Succeeded against nodes (SVG or PNG); default <out>/time-to-succeeded.svg")
	noiseEvents := flag.Int("noise-events", 0, "the unrelated-events scenario: each controller idle before and after this many "+
		"unrelated Pulling events are made (0: off)")
	shapes := flag.Bool("shapes", false, "after each scenario's floor, time the controller's Jobs with one thing taken away at a time "+
		"(the owner reference, the init container, ...), by the floor's winning strategy")
	chartFrom := flag.String("chart-from", "", "only draw the chart (-chart) from the scenarios of an earlier run's results.json, with no cluster")
	flag.Parse()
	if *chartFrom != "" {
		must(chartFromFile(*chartFrom, *chartPath))
		return
	}
	for _, v := range strings.Split(*variantFlags, ";") {
		if v = strings.TrimSpace(v); v != "" {
			variants = append(variants, v)
		}
	}
	if *bare {
		nodeImages = 0
	}
	if *chartPath == "" {
		*chartPath = filepath.Join(outDir, "time-to-succeeded.svg")
	}
	extra = strings.Fields(*fledgedFlags)
	must(os.MkdirAll(outDir, 0o755))
	var grid []scenario
	maxNodes := 0
	for _, s := range strings.Split(*scenarios, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		var sc scenario
		if _, err := fmt.Sscanf(strings.TrimSpace(s), "%dx%d", &sc.Nodes, &sc.Images); err != nil || sc.Nodes < 1 || sc.Images < 1 {
			fail("bad scenario %q: want NODESxIMAGES", s)
		}
		grid = append(grid, sc)
		maxNodes = max(maxNodes, sc.Nodes)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		fail("KUBECONFIG: %v", err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	fledged = clientset.NewForConfigOrDie(cfg)
	// The bench's own watches (the floor's Jobs, each scenario's pods) in
	// protobuf, as the control plane's components and the controller
	// have theirs: encoding them as JSON would take the API server's CPU
	// from what is measured.
	proto := *cfg
	proto.ContentType = "application/vnd.kubernetes.protobuf"
	kube = kubernetes.NewForConfigOrDie(&proto)
	ctx := context.Background()

	sizes := map[int]bool{}
	for _, sc := range grid {
		sizes[sc.Nodes] = true
	}
	var steps []int
	for _, f := range strings.Split(*memNodes, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || (len(steps) > 0 && n <= steps[len(steps)-1]) {
			fail("bad -memory-nodes %q: want growing node counts, comma separated", *memNodes)
		}
		steps = append(steps, n)
	}
	fmt.Printf("bench: making %d kwok nodes, each reporting %d images\n", maxNodes, nodeImages)
	ensureNodes(ctx, maxNodes, sizes)

	var results []Result
	shapeMD := ""
	for _, sc := range grid {
		fmt.Printf("bench: %d nodes x %d images\n", sc.Nodes, sc.Images)
		fl := floor(ctx, sc)
		if *shapes {
			for _, st := range strategies {
				if st.Name == fl.Best.Strategy {
					shapeMD += shapeTable(sc, shapeStudy(ctx, sc, st))
				}
			}
		}
		for _, v := range append([]string{""}, variants...) {
			r := runScenario(ctx, sc, strings.Fields(v))
			r.Floor, r.FloorStrategy, r.FloorSeconds, r.FloorJobs = fl, fl.Best.Strategy, fl.Best.Seconds, fl.Best.Jobs
			r.RatioToFloor = r.Seconds / r.FloorSeconds
			r.SimplestSeconds, r.RatioToSimplest = fl.Simplest.Seconds, r.Seconds/fl.Simplest.Seconds
			if v != "" {
				fmt.Printf("bench:   with %s:\n", v)
			}
			fmt.Printf("bench:   %.1fs (floor %.1fs by %s, x%.2f; simplest Jobs %.1fs, x%.2f), %d Jobs, %d writes (%.3f per pull), peak RSS %.0f MiB, CPU %.1fs; control plane's CPU %s\n",
				r.Seconds, r.FloorSeconds, r.FloorStrategy, r.RatioToFloor, r.SimplestSeconds, r.RatioToSimplest,
				r.JobsCreated, r.WriteRequests, r.WritesPerImagePull, r.PeakRSSMiB, r.CPUSeconds, cpuText(r.ClusterCPUSeconds))
			results = append(results, r)
		}
	}
	var joinTimes []float64
	if len(grid) > 0 {
		joinTimes = timeJoins(ctx, *joins)
	}
	var mem []MemResult
	if len(steps) > 0 {
		mem = memory(ctx, steps, *memImages, *memTimeout, sizes)
	}

	var noisy []NoiseResult
	if *noiseEvents > 0 {
		noisy = noise(ctx, *noiseEvents)
	}

	md := table(results, joinTimes) + floorTable(results) + shapeMD + memTable(mem) + noiseTable(noisy)
	fmt.Println()
	fmt.Println(md)
	if err := chart(results, *chartPath); err != nil {
		fmt.Printf("bench: %v\n", err)
	} else {
		fmt.Printf("bench: wrote %s\n", *chartPath)
	}
	var floors []FloorRun
	for _, r := range results {
		if r.Flags == "" {
			floors = append(append(floors, r.Floor.Runs...), r.Floor.Simplest)
		}
	}
	data, _ := json.MarshalIndent(map[string]any{"scenarios": results, "floorRuns": floors, "firstJobForNewNodeSeconds": joinTimes, "memory": mem, "unrelatedEvents": noisy,
		"nodeImages": nodeImages, "nodeJSONBytes": nodeJSONBytes,
		"imagesPerJob": perJob, "fledgedFlags": extra, "date": time.Now().UTC().Format(time.RFC3339)}, "", "  ")
	must(os.WriteFile(filepath.Join(outDir, "results.json"), data, 0o644))
	must(os.WriteFile(filepath.Join(outDir, "results.md"), []byte(md), 0o644))
	fmt.Printf("bench: wrote %s and %s\n", filepath.Join(outDir, "results.md"), filepath.Join(outDir, "results.json"))
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func sizeLabel(n int) string { return fmt.Sprintf("bench.kubefledged.io/first-%d", n) }

// ensureNodes creates bench-node-0..n-1; node i carries first-N=true for every
// scenario size N > i, so a scenario selects exactly its N nodes.
func ensureNodes(ctx context.Context, n int, sizes map[int]bool) {
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		name := fmt.Sprintf("bench-node-%d", i)
		l := map[string]string{puller.HostnameLabel: name, "type": "kwok"}
		for s := range sizes {
			if i < s {
				l[sizeLabel(s)] = "true"
			}
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l,
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}}}, metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				fail("creating node %s: %v", name, err)
			}
		})
	}
	wg.Wait()
	// kwok makes some 10 nodes Ready a second here while thousands renew
	// their leases: give it time in proportion. Past that the run goes on
	// with the nodes that are Ready, and says how many, rather than losing
	// the figures taken so far.
	timeout := max(10*time.Minute, time.Duration(n)*250*time.Millisecond)
	ready := 0
	if !waitUntil(ctx, time.Second, timeout, func() bool {
		list, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "type=kwok", ResourceVersion: "0"})
		if err != nil {
			return false
		}
		ready = 0
		for _, nd := range list.Items {
			for _, c := range nd.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready >= n
	}) {
		fmt.Printf("bench: only %d of %d nodes Ready after %v; going on\n", ready, n, timeout)
	}
	if nodeImages > 0 && n > 0 {
		reportImages(ctx, n)
	}
}

// reportImages has bench-node-0..n-1 report nodeImages images each in
// status.images, as a busy kubelet does: each by tag and by digest, with a
// size. They come from a pool of 1.5 times as many, so nodes share most
// images, but not all, as in a real cluster. None is an image a scenario
// caches.
func reportImages(ctx context.Context, n int) {
	pool := nodeImages * 3 / 2
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			name := fmt.Sprintf("bench-node-%d", i)
			imgs := make([]corev1.ContainerImage, nodeImages)
			for j := range imgs {
				k := (i + j) % pool
				repo := fmt.Sprintf("123456789012.dkr.ecr.eu-west-1.amazonaws.com/platform-team-%02d/workloads/service-%03d-api", k%12, k)
				imgs[j] = corev1.ContainerImage{
					Names:     []string{fmt.Sprintf("%s@sha256:%064x", repo, uint64(k+1)*0x9e3779b97f4a7c15), fmt.Sprintf("%s:v1.%d.%d-build.%d", repo, k%9, k%31, 1000+k)},
					SizeBytes: int64(20_000_000 + 7_919_000*k),
				}
			}
			patch, err := json.Marshal(map[string]any{"status": map[string]any{"images": imgs}})
			must(err)
			for attempt := 0; ; attempt++ {
				_, err = kube.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
				if err == nil || attempt == 5 {
					break
				}
				time.Sleep(time.Second)
			}
			if err != nil {
				fail("reporting images on node %s: %v", name, err)
			}
		})
	}
	wg.Wait()
	node, err := kube.CoreV1().Nodes().Get(ctx, "bench-node-0", metav1.GetOptions{})
	must(err)
	if len(node.Status.Images) != nodeImages {
		fail("node bench-node-0 reports %d images, want %d", len(node.Status.Images), nodeImages)
	}
	node.ManagedFields = nil
	data, _ := json.Marshal(node)
	nodeJSONBytes = len(data)
	fmt.Printf("bench: nodes report %d images each; one Node is %d bytes as JSON (managed fields left out)\n", nodeImages, nodeJSONBytes)
}

func poll(ctx context.Context, timeout time.Duration, what string, cond func() bool) {
	pollEvery(ctx, 200*time.Millisecond, timeout, what, cond)
}

func pollEvery(ctx context.Context, every, timeout time.Duration, what string, cond func() bool) {
	if !waitUntil(ctx, every, timeout, cond) {
		fail("waiting %v for %s", timeout, what)
	}
}

// waitUntil polls cond until it holds, and says whether it did before the
// timeout.
func waitUntil(ctx context.Context, every, timeout time.Duration, cond func() bool) bool {
	return wait.PollUntilContextTimeout(ctx, every, timeout, true, func(context.Context) (bool, error) {
		return cond(), nil
	}) == nil
}

func imagesOf(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("registry.bench.invalid/app-%03d:v1", i)
	}
	return out
}

func namespace(ctx context.Context, prefix string) string {
	ns, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}, metav1.CreateOptions{})
	must(err)
	return ns.Name
}

// deleteNamespace deletes a namespace and waits until it, and so its Jobs and
// pods, are gone: the next measurement starts on an idle control plane, not
// one still collecting a thousand Jobs.
func deleteNamespace(ctx context.Context, ns string) {
	must(kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}))
	poll(ctx, 10*time.Minute, "namespace "+ns+" to go", namespaceGone(ctx, ns))
}

// deleteNamespaceOrWarn deletes a namespace and waits up to 15 minutes for
// it to go, so that the next measurement starts on an idle control plane;
// past that it says so and goes on, without stopping the run. Thousands of
// Jobs and their pods take minutes to go on two cores.
func deleteNamespaceOrWarn(ctx context.Context, ns string) {
	start := time.Now()
	must(kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}))
	if !waitUntil(ctx, time.Second, 15*time.Minute, namespaceGone(ctx, ns)) {
		fmt.Printf("bench:   namespace %s not gone after 15 minutes; going on\n", ns)
		return
	}
	fmt.Printf("bench:   namespace %s gone in %.0fs\n", ns, time.Since(start).Seconds())
}

func namespaceGone(ctx context.Context, ns string) func() bool {
	return func() bool {
		_, err := kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}
}

// countPods counts the pods created in a namespace while it runs.
func countPods(ctx context.Context, ns string) (*atomic.Int64, func()) {
	w, err := kube.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	must(err)
	var n atomic.Int64
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type == watch.Added {
				n.Add(1)
			}
		}
	}()
	return &n, w.Stop
}

// runScenario times the controller (with the bench's flags and more) over
// one scenario; the caller fills in the floor.
func runScenario(ctx context.Context, sc scenario, more []string) Result {
	r := Result{Nodes: sc.Nodes, Images: sc.Images, Pulls: sc.Nodes * sc.Images, Flags: strings.Join(more, " ")}
	ns := namespace(ctx, "bench")
	defer deleteNamespace(ctx, ns)
	pods, stopPods := countPods(ctx, ns)
	defer stopPods()
	log := fmt.Sprintf("fledged-%dx%d.log", sc.Nodes, sc.Images)
	if len(more) > 0 {
		log = fmt.Sprintf("fledged-%dx%d-%s.log", sc.Nodes, sc.Images, strings.NewReplacer("-", "", "=", "_", " ", "_").Replace(r.Flags))
	}
	proc, metricsAddr, _ := startBinary(bin, log, append(append([]string(nil), extra...), more...)...)
	defer stopFledged(proc)
	poll(ctx, time.Minute, "the controller's caches", func() bool { return scrape(metricsAddr) != "" })

	cpu := clusterCPU()
	bytesBefore := bodyBytes(ctx)
	start := time.Now()
	sel := map[string]v1alpha2.LabelValue{sizeLabel(sc.Nodes): "true"}
	_, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Create(ctx, &v1alpha2.ImageCache{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec:       v1alpha2.ImageCacheSpec{CacheSpec: []v1alpha2.CacheSpecImages{{Images: imagesOf(sc.Images), NodeSelector: sel}}},
	}, metav1.CreateOptions{})
	must(err)
	poll(ctx, 15*time.Minute, "Succeeded", func() bool {
		ic, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Get(ctx, "bench", metav1.GetOptions{})
		return err == nil && ic.Status.Status == v1alpha2.ImageCacheActionStatusSucceeded && ic.Status.Pulls.Succeeded == int32(r.Pulls)
	})
	r.Seconds = time.Since(start).Seconds()
	r.ClusterCPUSeconds = cpuSince(cpu)
	r.LedgerBytes = ledgerBytes(bytesBefore, bodyBytes(ctx))
	r.LedgerBytesPerPull = r.LedgerBytes / float64(r.Pulls)
	// Let the controller finish its clean-up (deleting finished Jobs) before counting.
	poll(ctx, 5*time.Minute, "the finished Jobs to be deleted", func() bool {
		jobs, err := kube.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, j := range jobs.Items {
			if j.DeletionTimestamp == nil {
				return false
			}
		}
		return true
	})
	text := scrape(metricsAddr)
	r.Requests = map[string]int{}
	for key, n := range byVerbAndResource(text, "kubefledged_api_requests_total") {
		verb, resource, _ := strings.Cut(key, " ")
		r.Requests[key] = int(n)
		switch verb {
		case "create", "update", "patch", "delete", "deletecollection":
			if resource != "leases" && resource != "events" {
				r.WriteRequests += int(n)
			}
		}
	}
	r.WritesPerImagePull = float64(r.WriteRequests) / float64(r.Pulls)
	r.JobsCreated = int(metricValue(text, "kubefledged_jobs_created_total"))
	r.PodsCreated = int(pods.Load())
	r.PeakRSSMiB, r.CPUSeconds = procStats(proc.Process.Pid)
	return r
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startFledged runs the controller, its log in the output folder.
func startFledged(log string) (*exec.Cmd, string) {
	cmd, addr, _ := startBinary(bin, log, extra...)
	return cmd, addr
}

// startBinary runs a controller binary with the bench's flags and more,
// and returns its metrics and health addresses.
func startBinary(path, log string, flags ...string) (*exec.Cmd, string, string) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	health := fmt.Sprintf("127.0.0.1:%d", freePort())
	logFile, err := os.Create(filepath.Join(outDir, log))
	must(err)
	cmd := exec.Command(path, "--kubeconfig", os.Getenv("KUBECONFIG"), "--metrics-bind-address="+addr,
		"--health-probe-bind-address="+health, "--image-cache-refresh-frequency=0",
		fmt.Sprintf("--images-per-job=%d", perJob))
	cmd.Args = append(cmd.Args, flags...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(cmd.Start())
	return cmd, addr, health
}

func stopFledged(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func scrape(addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}

func metricValue(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return 0
}

// procStats reads a process's peak resident memory and CPU time from /proc.
func procStats(pid int) (float64, float64) {
	var rss float64
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
				rss = kb / 1024
			}
		}
	}
	var cpu float64
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		fields := strings.Fields(string(data)[strings.LastIndex(string(data), ")")+2:])
		if len(fields) > 12 {
			utime, _ := strconv.ParseFloat(fields[11], 64)
			stime, _ := strconv.ParseFloat(fields[12], 64)
			cpu = (utime + stime) / 100 // clock ticks (USER_HZ = 100)
		}
	}
	return rss, cpu
}

// timeJoins measures how soon a node that joins gets its first pull Job.
func timeJoins(ctx context.Context, n int) []float64 {
	if n == 0 {
		return nil
	}
	ns := namespace(ctx, "bench-join")
	defer deleteNamespace(ctx, ns)
	proc, addr := startFledged("fledged-joins.log")
	defer stopFledged(proc)
	poll(ctx, time.Minute, "the controller", func() bool { return scrape(addr) != "" })
	_, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Create(ctx, &v1alpha2.ImageCache{
		ObjectMeta: metav1.ObjectMeta{Name: "join"},
		Spec: v1alpha2.ImageCacheSpec{CacheSpec: []v1alpha2.CacheSpecImages{{Images: imagesOf(3),
			NodeSelector: map[string]v1alpha2.LabelValue{"bench.kubefledged.io/join": "true"}}}},
	}, metav1.CreateOptions{})
	must(err)
	// A Job on kwok can finish, and be deleted, within 100ms: watch, do not poll.
	w, err := kube.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{})
	must(err)
	defer w.Stop()
	seen := make(chan string, 16)
	go func() {
		for ev := range w.ResultChan() {
			if j, ok := ev.Object.(*batchv1.Job); ok && ev.Type == watch.Added {
				seen <- j.Annotations[puller.AnnotationNode]
			}
		}
	}()
	var out []float64
	for i := range n {
		name := fmt.Sprintf("bench-join-%d", i)
		start := time.Now()
		_, err := kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels:      map[string]string{puller.HostnameLabel: name, "type": "kwok", "bench.kubefledged.io/join": "true"},
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"}}}, metav1.CreateOptions{})
		must(err)
		defer func() { _ = kube.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) }()
		timeout := time.After(time.Minute)
	wait:
		for {
			select {
			case node := <-seen:
				if node == name {
					break wait
				}
			case <-timeout:
				fail("no pull Job for the new node %s within a minute", name)
			}
		}
		out = append(out, time.Since(start).Seconds())
	}
	return out
}

func table(results []Result, joins []float64) string {
	var b strings.Builder
	if len(extra) > 0 {
		fmt.Fprintf(&b, "Controller flags beyond the defaults: `%s`\n\n", strings.Join(extra, " "))
	}
	b.WriteString("| nodes x images | pulls | time to Succeeded | floor (its Jobs, no controller) | ratio | simplest Jobs | ratio | Jobs | Pods | API writes | writes per pull | status and slice bytes per pull | peak RSS | CPU |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %d | %.1f s | %.1f s (%d Jobs, %s) | %.2f | %.1f s | %.2f | %d | %d | %d | %.3f | %.0f | %.0f MiB | %.1f s |\n",
			r.label(), r.Pulls, r.Seconds, r.FloorSeconds, r.FloorJobs, r.FloorStrategy, r.RatioToFloor, r.SimplestSeconds, r.RatioToSimplest,
			r.JobsCreated, r.PodsCreated, r.WriteRequests, r.WritesPerImagePull, r.LedgerBytesPerPull, r.PeakRSSMiB, r.CPUSeconds)
	}
	b.WriteString("\nAPI requests by verb and resource (leases and events are left out of the writes above):\n\n")
	b.WriteString("| nodes x images | requests |\n| --- | --- |\n")
	for _, r := range results {
		var keys []string
		for k := range r.Requests {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s: %d", k, r.Requests[k]))
		}
		fmt.Fprintf(&b, "| %s | %s |\n", r.label(), strings.Join(parts, ", "))
	}
	if len(joins) > 0 {
		sorted := append([]float64(nil), joins...)
		sort.Float64s(sorted)
		fmt.Fprintf(&b, "\nFirst pull Job for a joining node: median %.2f s, max %.2f s over %d joins.\n",
			sorted[len(sorted)/2], sorted[len(sorted)-1], len(sorted))
	}
	return b.String()
}

func (r Result) label() string {
	if r.Flags == "" {
		return fmt.Sprintf("%d x %d", r.Nodes, r.Images)
	}
	return fmt.Sprintf("%d x %d, `%s`", r.Nodes, r.Images, r.Flags)
}
