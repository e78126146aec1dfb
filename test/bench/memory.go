package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// MemResult is the memory of one controller binary with a number of nodes:
// idle, and (at the last node count) over one cache of all of them.
type MemResult struct {
	Binary string // "this tree" or "baseline"
	Nodes  int
	// IdleRSSMiB is the resident memory 10 s after the informers synced,
	// with no cache; IdlePeakRSSMiB the peak (VmHWM) until then, which
	// includes the initial lists.
	IdleRSSMiB     float64
	IdlePeakRSSMiB float64
	// With the cache (the last node count only).
	Images     int     `json:",omitempty"`
	Pulls      int     `json:",omitempty"`
	Succeeded  int     `json:",omitempty"` // pulls counted when measured
	Completed  bool    `json:",omitempty"` // the cache reached Succeeded
	Seconds    float64 `json:",omitempty"`
	PeakRSSMiB float64 `json:",omitempty"`
	CPUSeconds float64 `json:",omitempty"`
	// LedgerBytesPerPull is what the API server took in ImageCache and
	// ImageCacheSlice writes per pull, until Succeeded or the timeout.
	LedgerBytesPerPull float64 `json:",omitempty"`
	// HeapProfiles are the pprof files taken (idle, mid-run, at the end).
	HeapProfiles []string `json:",omitempty"`
}

// memory runs the memory scenario: for each node count, each binary
// (baseline first, when given) idle; at the last count, one cache of
// images over every node, to Succeeded or the timeout.
func memory(ctx context.Context, steps []int, images int, timeout time.Duration, sizes map[int]bool) []MemResult {
	binaries := []struct{ name, path string }{{"this tree", bin}}
	if baseline != "" {
		binaries = append([]struct{ name, path string }{{"baseline", baseline}}, binaries...)
	}
	var out []MemResult
	for i, n := range steps {
		fmt.Printf("bench: memory with %d nodes\n", n)
		ensureNodes(ctx, n, sizes)
		last := i == len(steps)-1
		for _, b := range binaries {
			r := memoryRun(ctx, b.name, b.path, n, images, timeout, last)
			fmt.Printf("bench:   %s: idle %.0f MiB (peak so far %.0f MiB)", b.name, r.IdleRSSMiB, r.IdlePeakRSSMiB)
			if last {
				fmt.Printf("; %d x %d: peak %.0f MiB, %d of %d pulls in %.0fs, CPU %.1fs", n, images, r.PeakRSSMiB, r.Succeeded, r.Pulls, r.Seconds, r.CPUSeconds)
			}
			fmt.Println()
			out = append(out, r)
		}
	}
	return out
}

func memoryRun(ctx context.Context, name, path string, nodes, images int, timeout time.Duration, withCache bool) MemResult {
	r := MemResult{Binary: name, Nodes: nodes}
	tag := strings.ReplaceAll(name, " ", "-")
	log := fmt.Sprintf("fledged-memory-%s-%d.log", tag, nodes)
	proc, addr, health := startBinary(path, log, append([]string{"--profiling"}, extra...)...)
	defer stopFledged(proc)
	pollEvery(ctx, 200*time.Millisecond, 5*time.Minute, "the controller's caches to sync", func() bool { return ready(health) })
	time.Sleep(10 * time.Second) // idle: nothing to do but hold the caches
	r.IdlePeakRSSMiB, _ = procStats(proc.Process.Pid)
	r.IdleRSSMiB = currentRSS(proc.Process.Pid)
	profile := func(when string) {
		file := filepath.Join(outDir, fmt.Sprintf("heap-%s-%d-%s.pb.gz", tag, nodes, when))
		if err := saveURL("http://"+addr+"/debug/pprof/heap", file); err != nil {
			fmt.Printf("bench:   heap profile: %v\n", err)
			return
		}
		r.HeapProfiles = append(r.HeapProfiles, file)
	}
	if !withCache {
		profile("idle")
		return r
	}
	profile("idle")

	ns := namespace(ctx, "bench-memory")
	// Thousands of Jobs and pods take longer to go than the other
	// scenarios' namespaces: the measurement is taken, so waiting long is
	// only said, not fatal.
	defer deleteNamespaceOrWarn(ctx, ns)
	r.Images, r.Pulls = images, nodes*images
	bytesBefore := bodyBytes(ctx)
	start := time.Now()
	_, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Create(ctx, &v1alpha2.ImageCache{
		ObjectMeta: metav1.ObjectMeta{Name: "memory"},
		Spec:       v1alpha2.ImageCacheSpec{CacheSpec: []v1alpha2.CacheSpecImages{{Images: imagesOf(images)}}},
	}, metav1.CreateOptions{})
	must(err)
	mid := false
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ic, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Get(ctx, "memory", metav1.GetOptions{})
		if err == nil {
			r.Succeeded = int(ic.Status.Pulls.Succeeded)
			if !mid && r.Succeeded >= r.Pulls/2 {
				mid = true
				profile("mid-run")
			}
			if ic.Status.Status == v1alpha2.ImageCacheActionStatusSucceeded && r.Succeeded == r.Pulls {
				r.Completed = true
				break
			}
		}
		time.Sleep(time.Second)
	}
	r.Seconds = time.Since(start).Seconds()
	if r.Succeeded > 0 {
		r.LedgerBytesPerPull = ledgerBytes(bytesBefore, bodyBytes(ctx)) / float64(r.Succeeded)
	}
	profile("end")
	r.PeakRSSMiB, r.CPUSeconds = procStats(proc.Process.Pid)
	return r
}

func ready(health string) bool {
	resp, err := http.Get("http://" + health + "/readyz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func saveURL(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// currentRSS reads a process's resident memory now (VmRSS), in MiB.
func currentRSS(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func memTable(mem []MemResult) string {
	if len(mem) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nMemory: nodes reporting %d images each (one Node %d bytes as JSON); each binary run alone, with `--profiling`.\n\n", nodeImages, nodeJSONBytes)
	b.WriteString("| controller | nodes | idle RSS | peak RSS to idle | cache | pulls done | time | peak RSS | CPU | status and slice bytes per pull |\n")
	b.WriteString("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range mem {
		fmt.Fprintf(&b, "| %s | %d | %.0f MiB | %.0f MiB |", r.Binary, r.Nodes, r.IdleRSSMiB, r.IdlePeakRSSMiB)
		if r.Pulls == 0 {
			b.WriteString(" | | | | | |\n")
			continue
		}
		done := fmt.Sprintf("%d of %d", r.Succeeded, r.Pulls)
		if !r.Completed {
			done += " (not Succeeded within the timeout)"
		}
		fmt.Fprintf(&b, " %d x %d | %s | %.0f s | %.0f MiB | %.1f s | %.0f |\n", r.Nodes, r.Images, done, r.Seconds, r.PeakRSSMiB,
			r.CPUSeconds, r.LedgerBytesPerPull)
	}
	return b.String()
}
