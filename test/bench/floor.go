package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/app"
	"kubefledged.io/kube-fledged/pkg/options"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// The floor is the fastest the control plane runs a scenario's Jobs with
// no controller: the controller's own Jobs (puller.NewPullJob with the
// default flags), created by each of a few strategies, the fastest of
// which is the floor. The simplest Jobs that cache the same images (one
// container per image and nothing else) show what the Job's shape costs.

// shape is one way to build the floor's Jobs: the controller's own, with
// one change (or none).
type shape struct {
	Name   string
	change func(*batchv1.Job)
}

const bareLabel = "bench.kubefledged.io/floor"

var (
	shapeOwn = shape{Name: "the controller's own"}
	// shapeSimplest caches the same images with nothing else: one
	// container per image, pinned by the hostname label, never restarted.
	shapeSimplest = shape{Name: "the simplest (one container per image, nothing else)", change: func(j *batchv1.Job) {
		node := j.Spec.Template.Spec.NodeSelector[puller.HostnameLabel]
		var containers []corev1.Container
		for _, c := range j.Spec.Template.Spec.Containers {
			containers = append(containers, corev1.Container{Name: c.Name, Image: c.Image})
		}
		*j = batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: j.Name, Labels: map[string]string{bareLabel: "true"}},
			Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](0), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: containers, RestartPolicy: corev1.RestartPolicyNever,
				NodeSelector: map[string]string{puller.HostnameLabel: node},
			}}},
		}
	}}
	// shapePadded is the simplest Job with an annotation on its pod that
	// makes its pod template as large as the controller's own: whether
	// the bytes cost, rather than what they say.
	shapePadded = shape{Name: "the simplest, its pod padded to the controller's own's size (an annotation)", change: func(j *batchv1.Job) {
		own, _ := json.Marshal(j.Spec.Template)
		shapeSimplest.change(j)
		simplest, _ := json.Marshal(j.Spec.Template)
		if pad := len(own) - len(simplest) - 64; pad > 0 {
			j.Spec.Template.Annotations = map[string]string{"bench.kubefledged.io/padding": strings.Repeat("x", pad)}
		}
	}}
	// shapeSteps are the controller's Job with one thing taken away each,
	// for -shapes: which part of the shape costs the control plane.
	shapeSteps = []shape{
		{Name: "without the owner reference", change: func(j *batchv1.Job) { j.OwnerReferences = nil }},
		{Name: "without the init container (and its volume)", change: func(j *batchv1.Job) {
			p := &j.Spec.Template.Spec
			p.InitContainers, p.Volumes = nil, nil
			for i := range p.Containers {
				p.Containers[i].VolumeMounts = nil
			}
		}},
		{Name: "without security contexts", change: func(j *batchv1.Job) {
			p := &j.Spec.Template.Spec
			p.SecurityContext = nil
			for i := range p.InitContainers {
				p.InitContainers[i].SecurityContext = nil
			}
			for i := range p.Containers {
				p.Containers[i].SecurityContext = nil
			}
		}},
		{Name: "without resources", change: func(j *batchv1.Job) {
			p := &j.Spec.Template.Spec
			for i := range p.InitContainers {
				p.InitContainers[i].Resources = corev1.ResourceRequirements{}
			}
			for i := range p.Containers {
				p.Containers[i].Resources = corev1.ResourceRequirements{}
			}
		}},
		{Name: "without labels and annotations", change: func(j *batchv1.Job) {
			j.Labels, j.Annotations = map[string]string{bareLabel: "true"}, nil
			j.Spec.Template.Labels, j.Spec.Template.Annotations = nil, nil
		}},
		{Name: "without tolerations", change: func(j *batchv1.Job) { j.Spec.Template.Spec.Tolerations = nil }},
		{Name: "without the active deadline", change: func(j *batchv1.Job) { j.Spec.ActiveDeadlineSeconds = nil }},
		{Name: "without the pod's other settings (grace period, token, termination message)", change: func(j *batchv1.Job) {
			p := &j.Spec.Template.Spec
			p.TerminationGracePeriodSeconds, p.AutomountServiceAccountToken = nil, nil
			for i := range p.Containers {
				p.Containers[i].TerminationMessagePolicy = ""
				p.Containers[i].Command, p.Containers[i].Args = nil, nil
			}
		}},
	}
)

// strategy is one way to create a scenario's Jobs.
type strategy struct {
	Name   string
	create func(ctx context.Context, ns string, jobs []*batchv1.Job)
}

// jobsPerSecondAtKCMQPS is how fast the Job controller can take new Jobs
// at the local cluster's --kube-api-qps=500 (hack/local-up.sh): each Job
// costs it about five writes (the pod, its status updates, the pod's
// finalizer).
const jobsPerSecondAtKCMQPS = 100

var strategies = []strategy{
	{Name: "all at once (64 goroutines)", create: func(ctx context.Context, ns string, jobs []*batchv1.Job) {
		createParallel(ctx, ns, jobs, 64)
	}},
	{Name: "10 parallel appliers", create: func(ctx context.Context, ns string, jobs []*batchv1.Job) {
		createParallel(ctx, ns, jobs, 10)
	}},
	{Name: fmt.Sprintf("batches at the controller-manager's QPS (%d Jobs a second)", jobsPerSecondAtKCMQPS),
		create: func(ctx context.Context, ns string, jobs []*batchv1.Job) {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for i := 0; i < len(jobs); i += jobsPerSecondAtKCMQPS {
				if i > 0 {
					<-tick.C
				}
				createParallel(ctx, ns, jobs[i:min(i+jobsPerSecondAtKCMQPS, len(jobs))], 16)
			}
		}},
}

func createParallel(ctx context.Context, ns string, jobs []*batchv1.Job, workers int) {
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for _, job := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := kube.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
				fail("floor job %s: %v", job.Name, err)
			}
		})
	}
	wg.Wait()
}

// FloorRun is one timing of a scenario's Jobs with no controller.
type FloorRun struct {
	Shape, Strategy string
	Jobs            int
	Seconds         float64
	// TemplateBytes is the size of one Job's pod template as JSON.
	TemplateBytes int
	// CPUSeconds is what each control-plane process spent meanwhile.
	CPUSeconds map[string]float64
}

// floorJobs builds the scenario's Jobs as the controller would (one per
// node per batch of images), in the given shape, into namespace ns owned
// by owner.
func floorJobs(sc scenario, owner *v1alpha2.ImageCache, s shape) []*batchv1.Job {
	opts := options.New()
	opts.ImagesPerJob = perJob
	opts.Complete()
	cfg := app.ControllerConfig(opts).Puller
	imgs := imagesOf(sc.Images)
	epoch := time.Now().Unix()
	var jobs []*batchv1.Job
	for n := range sc.Nodes {
		node := fmt.Sprintf("bench-node-%d", n)
		for i := 0; i < len(imgs); i += perJob {
			job := puller.NewPullJob(cfg, puller.Batch{Cache: owner, NodeName: node, Hostname: node, Images: imgs[i:min(i+perJob, len(imgs))], Epoch: epoch})
			if s.change != nil {
				s.change(job)
			}
			job.Namespace = ""
			jobs = append(jobs, job)
		}
	}
	return jobs
}

// floorRun times a scenario's Jobs of one shape created by one strategy,
// in a namespace of their own, from the first create until every Job has
// succeeded. It watches the Jobs rather than listing them, so that the
// measurement costs the API server the same for Jobs of any size.
func floorRun(ctx context.Context, sc scenario, s shape, st strategy) FloorRun {
	ns := namespace(ctx, "floor")
	defer deleteNamespace(ctx, ns)
	_, err := kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
	for i := 0; err != nil && i < 50; i++ {
		time.Sleep(100 * time.Millisecond)
		_, err = kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
	}
	// An ImageCache no controller acts on owns them, as the controller's own.
	owner, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Create(ctx, &v1alpha2.ImageCache{
		ObjectMeta: metav1.ObjectMeta{Name: "floor"},
		Spec:       v1alpha2.ImageCacheSpec{CacheSpec: []v1alpha2.CacheSpecImages{{Images: imagesOf(sc.Images)}}},
	}, metav1.CreateOptions{})
	must(err)
	jobs := floorJobs(sc, owner, s)
	template, _ := json.Marshal(jobs[0].Spec.Template)
	// An informer, not a bare watch: it lists and watches again if the
	// API server ends its watch.
	var mu sync.Mutex
	succeeded := map[string]bool{}
	done := make(chan struct{})
	count := func(obj any) {
		j, ok := obj.(*batchv1.Job)
		if !ok || j.Status.Succeeded == 0 {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !succeeded[j.Name] {
			succeeded[j.Name] = true
			if len(succeeded) == len(jobs) {
				close(done)
			}
		}
	}
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: cache.NewListWatchFromClient(kube.BatchV1().RESTClient(), "jobs", ns, fields.Everything()),
		ObjectType:    &batchv1.Job{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    count,
			UpdateFunc: func(_, obj any) { count(obj) },
		},
	})
	stop := make(chan struct{})
	defer close(stop)
	go informer.Run(stop)
	if !cache.WaitForCacheSync(stop, informer.HasSynced) {
		fail("the floor's Job informer did not sync")
	}
	cpu := clusterCPU()
	start := time.Now()
	st.create(ctx, ns, jobs)
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	timeout := time.After(15 * time.Minute)
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			mu.Lock()
			fmt.Printf("bench:     %d of %d Jobs succeeded after %.0fs\n", len(succeeded), len(jobs), time.Since(start).Seconds())
			mu.Unlock()
		case <-timeout:
			fail("waiting 15m for the floor's Jobs (%s, %s)", s.Name, st.Name)
		}
	}
	r := FloorRun{Shape: s.Name, Strategy: st.Name, Jobs: len(jobs), Seconds: time.Since(start).Seconds(), TemplateBytes: len(template), CPUSeconds: cpuSince(cpu)}
	fmt.Printf("bench:   floor: %d Jobs, %s, %s: %.1fs (CPU %s)\n", r.Jobs, s.Name, st.Name, r.Seconds, cpuText(r.CPUSeconds))
	return r
}

// Floor is a scenario's floor: every strategy's time for the controller's
// own Jobs, the fastest of them, and the simplest Jobs by that strategy.
type Floor struct {
	Runs     []FloorRun
	Best     FloorRun
	Simplest FloorRun
}

func floor(ctx context.Context, sc scenario) Floor {
	var f Floor
	for _, st := range strategies {
		r := floorRun(ctx, sc, shapeOwn, st)
		f.Runs = append(f.Runs, r)
		if f.Best.Seconds == 0 || r.Seconds < f.Best.Seconds {
			f.Best = r
		}
	}
	for _, st := range strategies {
		if st.Name == f.Best.Strategy {
			f.Simplest = floorRun(ctx, sc, shapeSimplest, st)
		}
	}
	return f
}

// shapeStudy times the controller's Jobs with one thing taken away at a
// time, by one strategy: which part of the Job's shape costs the control
// plane.
func shapeStudy(ctx context.Context, sc scenario, st strategy) []FloorRun {
	var out []FloorRun
	for _, s := range append(append([]shape{shapeOwn}, shapeSteps...), shapeSimplest, shapePadded) {
		out = append(out, floorRun(ctx, sc, s, st))
	}
	return out
}

// clusterProcesses are the control plane's processes whose CPU a run
// reads, by the PID files hack/local-up.sh writes.
var clusterProcesses = []string{"kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok"}

// clusterCPU reads the CPU seconds each control-plane process has spent.
func clusterCPU() map[string]float64 {
	out := map[string]float64{}
	for _, name := range clusterProcesses {
		data, err := os.ReadFile(filepath.Join(pidDir, name+".pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			continue
		}
		_, cpu := procStats(pid)
		out[name] = cpu
	}
	return out
}

// cpuSince is what each process spent since clusterCPU gave before.
func cpuSince(before map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for name, now := range clusterCPU() {
		if b, ok := before[name]; ok {
			out[name] = now - b
		}
	}
	return out
}

func cpuText(cpu map[string]float64) string {
	var parts []string
	total := 0.0
	for _, name := range clusterProcesses {
		if v, ok := cpu[name]; ok {
			parts = append(parts, fmt.Sprintf("%s %.1fs", name, v))
			total += v
		}
	}
	return fmt.Sprintf("%.1fs: %s", total, strings.Join(parts, ", "))
}

func floorTable(results []Result) string {
	var b strings.Builder
	b.WriteString("\nThe floor's strategies, the controller's own Jobs (the fastest is the floor), and the simplest Jobs by the winning strategy:\n\n")
	b.WriteString("| nodes x images | Jobs | strategy | shape | time | control plane's CPU |\n| --- | ---: | --- | --- | ---: | --- |\n")
	for _, r := range results {
		if r.Flags != "" {
			continue
		}
		for _, f := range append(append([]FloorRun(nil), r.Floor.Runs...), r.Floor.Simplest) {
			mark := ""
			if f.Shape == r.Floor.Best.Shape && f.Strategy == r.Floor.Best.Strategy {
				mark = " (floor)"
			}
			fmt.Fprintf(&b, "| %d x %d | %d | %s | %s | %.1f s%s | %s |\n", r.Nodes, r.Images, f.Jobs, f.Strategy, f.Shape, f.Seconds, mark, cpuText(f.CPUSeconds))
		}
	}
	return b.String()
}

func shapeTable(sc scenario, runs []FloorRun) string {
	if len(runs) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nThe Job's shape, one change at a time, %d x %d, %s:\n\n", sc.Nodes, sc.Images, runs[0].Strategy)
	b.WriteString("| Jobs | pod template (JSON) | time | against the controller's own | control plane's CPU |\n| --- | ---: | ---: | ---: | --- |\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "| %s | %d B | %.1f s | %.2f | %s |\n", r.Shape, r.TemplateBytes, r.Seconds, r.Seconds/runs[0].Seconds, cpuText(r.CPUSeconds))
	}
	return b.String()
}
