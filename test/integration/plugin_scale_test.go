package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// pluginRun is one timed run of the kubectl-fledged binary.
type pluginRun struct {
	Args []string `json:"args"`
	// Lines printed, and when the first and the last came, from the start.
	Lines          int     `json:"lines"`
	FirstLineSec   float64 `json:"firstLineSeconds"`
	TotalSec       float64 `json:"totalSeconds"`
	PeakRSSMiB     float64 `json:"peakRSSMiB"`
	CPUSec         float64 `json:"cpuSeconds"`
	LedgerKiB      float64 `json:"ledgerKiB"`
	ObjectKiB      float64 `json:"objectKiB"`
	Nodes, Images  int
	NodeObjectsKiB float64 `json:"nodeObjectKiB"`
}

// TestPluginScale times `kubectl fledged nodes` (the binary) on a cache of
// KUBE_FLEDGED_PLUGIN_NODES nodes (5,000 in make bench-plugin) x 100
// images, with nodes the size of busy ones (50 images reported, each by tag
// and digest), and writes _output/bench/plugin.json. It is a measurement:
// the figures go to the note, and only the output's shape is asserted.
func TestPluginScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("KUBE_FLEDGED_PLUGIN_NODES"))
	if n == 0 {
		t.Skip("a measurement: make bench-plugin runs it (KUBE_FLEDGED_PLUGIN_NODES)")
	}
	const images = 100
	ns := testNamespace(t, "scale")
	bin := buildPlugin(t)

	// The nodes, 32 writes at a time.
	ctx := context.Background()
	start := time.Now()
	names := nodeNames(ns, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var nodeSize int
	var mu sync.Mutex
	made := map[string]*corev1.Node{} // name and UID, for the ledger's tags
	for _, name := range names {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			node, err := kubeClient.CoreV1().Nodes().Create(ctx, busyNode(name, ns), metav1.CreateOptions{})
			if err == nil {
				node.Status = busyNode(name, ns).Status
				node, err = kubeClient.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
			}
			if err != nil {
				t.Errorf("node %s: %v", name, err)
				return
			}
			b, _ := json.Marshal(node)
			mu.Lock()
			nodeSize = len(b)
			made[name] = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: node.UID}}
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		_ = kubeClient.CoreV1().Nodes().DeleteCollection(context.Background(), metav1.DeleteOptions{},
			metav1.ListOptions{LabelSelector: "scale=" + ns})
	})
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d nodes of %.1f KiB made in %v", n, float64(nodeSize)/1024, time.Since(start).Round(time.Second))

	// The cache, and a status as the controller writes it once every
	// pull settled: one image in 50 failed on each node in turn.
	var imgs []string
	for i := range images {
		imgs = append(imgs, fmt.Sprintf("registry.example/team-%02d/service-%02d:v1.%d", i%10, i, i))
	}
	createCache(t, ns, "big", entry(map[string]v1alpha2.LabelValue{"scale": v1alpha2.LabelValue(ns)}, imgs...))
	ic := cacheStatus(t, ns, "big")
	l := ledger.New(time.Now().Unix())
	failures := map[string]v1alpha2.NodeReasonMessageList{}
	failed := 0
	for i, name := range names {
		for j, img := range imgs {
			s := ledger.Pulled
			if (i+j)%50 == 0 {
				s = ledger.Failed
				failed++
				if len(failures[img]) < v1alpha2.MaxFailuresPerImage/20 {
					failures[img] = append(failures[img], v1alpha2.NodeReasonMessage{Node: name, Reason: "ImagePullBackOff",
						Message: "Back-off pulling image " + img})
				}
			}
			l.Set(name, img, s)
			l.SetOwned(name, img, s == ledger.Pulled)
		}
	}
	l.ForgetReplaced(made)
	// The ledger as the controller records it: its entries in slices.
	if err := fledgedtest.RecordLedger(ctx, fledged, ic, l); err != nil {
		t.Fatal(err)
	}
	enc := ic.Status.Ledger
	ic.Status = v1alpha2.ImageCacheStatus{Status: v1alpha2.ImageCacheActionStatusFailed, Reason: v1alpha2.ImageCacheReasonCreate,
		Message: "settled by the test", StartTime: &metav1.Time{Time: time.Now()}, CompletionTime: &metav1.Time{Time: time.Now()},
		ObservedGeneration: ic.Generation, NodesMatched: int32(n), Failures: failures, Ledger: enc,
		Pulls: v1alpha2.PullCounts{Desired: int32(n * images), Succeeded: int32(n*images - failed), Failed: int32(failed)}}
	if _, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).UpdateStatus(ctx, ic, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var ledgerJSON []byte
	for _, sl := range slicesOf(t, ic) {
		b, _ := json.Marshal(sl)
		ledgerJSON = append(ledgerJSON, b...)
	}
	objJSON, _ := json.Marshal(cacheStatus(t, ns, "big"))

	var runs []pluginRun
	for _, args := range [][]string{
		{"nodes", "big", "-n", ns},
		{"nodes", "big", "-n", ns, "-o", "json"},
		{"nodes", "big", "-n", ns, "--image", imgs[7], "--state", "failed"},
		{"status", "big", "-n", ns},
	} {
		r := timePlugin(t, bin, args)
		r.Nodes, r.Images = n, images
		r.LedgerKiB, r.ObjectKiB, r.NodeObjectsKiB = float64(len(ledgerJSON))/1024, float64(len(objJSON))/1024, float64(nodeSize)/1024
		t.Logf("kubectl fledged %v: %d lines, first after %.2fs, all after %.2fs, peak RSS %.1f MiB, CPU %.2fs",
			args[:2], r.Lines, r.FirstLineSec, r.TotalSec, r.PeakRSSMiB, r.CPUSec)
		runs = append(runs, r)
	}
	if runs[0].Lines != n+1 || runs[1].Lines != n {
		t.Errorf("nodes printed %d lines and -o json %d, want %d and %d", runs[0].Lines, runs[1].Lines, n+1, n)
	}
	if runs[2].Lines != n/50+1 {
		t.Errorf("nodes --image --state failed printed %d lines, want %d", runs[2].Lines, n/50+1)
	}
	if runs[0].FirstLineSec >= runs[0].TotalSec {
		t.Errorf("the first line came at the end (%.2fs of %.2fs): the output does not stream", runs[0].FirstLineSec, runs[0].TotalSec)
	}
	out := filepath.Join(projectRoot, "_output", "bench")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(runs, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "plugin.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// buildPlugin builds the kubectl-fledged binary of this tree.
func buildPlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kubectl-fledged")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/kubectl-fledged")
	build.Dir, build.Env = projectRoot, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building kubectl-fledged: %v\n%s", err, out)
	}
	return bin
}

// timePlugin runs the binary and times its output.
func timePlugin(t *testing.T, bin string, args []string) pluginRun {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--kubeconfig", cp.Kubeconfig}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Its peak memory from its own /proc entry: the rusage of a child
	// counts the memory of this process, which it shared until it ran the
	// binary.
	var hwm atomic.Int64
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			if kb := vmHWM(cmd.Process.Pid); kb > hwm.Load() {
				hwm.Store(kb)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	r := pluginRun{Args: args}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if r.Lines == 0 {
			r.FirstLineSec = time.Since(start).Seconds()
		}
		r.Lines++
	}
	close(stop)
	<-polled
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kubectl-fledged %v: %v", args, err)
	}
	r.TotalSec = time.Since(start).Seconds()
	r.PeakRSSMiB = float64(hwm.Load()) / 1024
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPUSec = (time.Duration(ru.Utime.Nano()) + time.Duration(ru.Stime.Nano())).Seconds()
	}
	return r
}

// vmHWM reads a process's peak resident memory (VmHWM), in KiB; 0 once it
// is gone.
func vmHWM(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}

// busyNode is a Ready node the size of a busy one: 50 images reported,
// each by tag and by digest, with the usual labels, addresses and capacity.
func busyNode(name, ns string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		puller.HostnameLabel: name, "scale": ns, corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64",
		corev1.LabelInstanceTypeStable: "m6i.2xlarge", corev1.LabelTopologyZone: "eu-west-1a", corev1.LabelTopologyRegion: "eu-west-1",
	}}}
	now := metav1.Now()
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now}}
	for _, c := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: c, Status: corev1.ConditionFalse,
			Reason: "KubeletHas" + string(c), Message: "kubelet has no " + string(c), LastHeartbeatTime: now, LastTransitionTime: now})
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}, {Type: corev1.NodeHostName, Address: name}}
	n.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"),
		corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("100Gi")}
	n.Status.Allocatable = n.Status.Capacity
	n.Status.NodeInfo = corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", ContainerRuntimeVersion: "containerd://2.1.4",
		OperatingSystem: "linux", Architecture: "amd64", OSImage: "Debian GNU/Linux 13", KernelVersion: "6.12.0"}
	for i := range 50 {
		digest := fmt.Sprintf("sha256:%064x", i+1)
		repo := fmt.Sprintf("registry.example/team-%02d/app-%02d", i%10, i)
		n.Status.Images = append(n.Status.Images, corev1.ContainerImage{Names: []string{repo + "@" + digest, repo + ":v1." + strconv.Itoa(i)},
			SizeBytes: int64(50+i) << 20})
	}
	return n
}
