//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/test/framework"
)

// podStartMiB is the size of the image whose pod start is timed by default:
// one layer of incompressible bytes, as large as a typical application image.
const podStartMiB = 120

// envInt reads a positive integer from the environment, else def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestRealNodePodStartColdAndCached is the user's view of a cache: a pod of
// a 120 MiB image, on the real node, from its creation until its container
// runs, when the image is cold (the kubelet pulls it from the registry) and
// when an ImageCache has cached it. It checks that the cached pod pulled
// nothing; the times are logged and written to _output/e2e/pod-start.json,
// not asserted. Tuned from the environment (make bench-podstart):
//
//	KUBE_FLEDGED_POD_START_RUNS  pairs of pods (1)
//	KUBE_FLEDGED_POD_START_MIB   the image's size (120)
//	KUBE_FLEDGED_POD_START_LINK  a rate such as 100mbit: the registry sits
//	                             across the shaped link (with linkDelay each
//	                             way) rather than on loopback
func TestRealNodePodStartColdAndCached(t *testing.T) {
	rn := needRealNode(t)
	runs := envInt("KUBE_FLEDGED_POD_START_RUNS", 1)
	mib := envInt("KUBE_FLEDGED_POD_START_MIB", podStartMiB)
	link := os.Getenv("KUBE_FLEDGED_POD_START_LINK")
	ns := newNamespace(t, "real-podstart")
	registry, where := rn.registry, "loopback"
	if link != "" {
		rn.startLinkRegistry(t, t.TempDir(), linkDelay)
		registry, where = rn.linkRegistry, fmt.Sprintf("a %s link with %v each way", link, linkDelay)
	}
	push := func(tag string, seed uint64) string {
		img, err := framework.LargeShellImage(mib, seed)
		if err != nil {
			t.Fatal(err)
		}
		// A fresh seed for each test run: an image of an earlier run may
		// still be on the node.
		ref := fmt.Sprintf("%s/e2e/podstart:%s-%d", registry, tag, time.Now().UnixNano())
		if err := framework.PushImage(img, ref, "", ""); err != nil {
			t.Fatal(err)
		}
		if rn.present(t, ref) {
			t.Fatalf("%s is on the node before the test", ref)
		}
		t.Cleanup(func() { rn.removeFromNode(t, ref) })
		return ref
	}
	seed := uint64(time.Now().UnixNano())
	var cold, cached []string
	for i := range runs {
		cold = append(cold, push(fmt.Sprintf("cold%d", i), seed+uint64(2*i)))
		cached = append(cached, push(fmt.Sprintf("cached%d", i), seed+uint64(2*i+1)))
	}
	if link != "" {
		rn.shapeLink(t, link)
	}
	rn.controller(t)
	cacheStart := time.Now()
	applyCache(t, ns, imageList(cached...)+onRealNode(rn)+"    pullDeadline: 1h\n")
	waitIC(t, ns, "app", time.Duration(runs)*(5*time.Minute+time.Duration(mib)*200*time.Millisecond), "Succeeded",
		done(v1alpha2.ImageCacheActionStatusSucceeded))
	t.Logf("the cache pulled %d images of %d MiB from %s in %v", runs, mib, where, time.Since(cacheStart).Round(time.Second))

	var coldTimes, cachedTimes []time.Duration
	for i := range runs {
		// Cold first: the cached image's pull is over, so the node does
		// nothing else while the cold one is pulled.
		coldTimes = append(coldTimes, timePodStart(t, ns, fmt.Sprintf("cold-%d", i), cold[i], rn.name))
		if msg := pulledEvent(t, ns, fmt.Sprintf("cold-%d", i)); !strings.Contains(msg, "Successfully pulled") {
			t.Errorf("the cold pod's Pulled event: %q, want a pull", msg)
		}
		cachedTimes = append(cachedTimes, timePodStart(t, ns, fmt.Sprintf("cached-%d", i), cached[i], rn.name))
		if msg := pulledEvent(t, ns, fmt.Sprintf("cached-%d", i)); !strings.Contains(msg, "already present on machine") {
			t.Errorf("the cached pod's Pulled event: %q, want the image already present", msg)
		}
	}
	t.Logf("%d MiB image from %s, pod created to container running, over %d runs: cold %v (median %v), cached %v (median %v)",
		mib, where, runs, coldTimes, median(coldTimes), cachedTimes, median(cachedTimes))
	secs := func(ds []time.Duration) []float64 {
		var out []float64
		for _, d := range ds {
			out = append(out, d.Seconds())
		}
		return out
	}
	data, _ := json.MarshalIndent(map[string]any{"imageMiB": mib, "registry": where, "coldSeconds": secs(coldTimes),
		"cachedSeconds": secs(cachedTimes), "date": time.Now().UTC().Format(time.RFC3339)}, "", "  ")
	if err := os.WriteFile(filepath.Join(artifacts, "pod-start.json"), data, 0o644); err != nil {
		t.Error(err)
	}
}

// timePodStart creates a pod of image on the node and returns the time
// from just before its creation until a watch shows its container running
// (or already finished: the image's command exits at once).
func timePodStart(t *testing.T, ns, name, image, node string) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	w, err := kubeClient.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
		NodeSelector:  map[string]string{"kubernetes.io/hostname": node},
		Tolerations:   []corev1.Toleration{{Key: warmingTaint, Operator: corev1.TolerationOpExists}},
		RestartPolicy: corev1.RestartPolicyNever,
		Containers:    []corev1.Container{{Name: "app", Image: image, ImagePullPolicy: corev1.PullIfNotPresent}},
	}}
	start := time.Now()
	if _, err := kubeClient.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("the watch of pod %s ended", name)
			}
			if ev.Type == watch.Error {
				t.Fatalf("watching pod %s: %v", name, ev.Object)
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || len(p.Status.ContainerStatuses) == 0 {
				continue
			}
			if st := p.Status.ContainerStatuses[0].State; st.Running != nil || st.Terminated != nil {
				return time.Since(start).Round(10 * time.Millisecond)
			}
		case <-ctx.Done():
			t.Fatalf("pod %s did not start within 20 minutes", name)
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
