//go:build e2e

package e2e

// Which images a cache may remove, where the kubelet and the node's
// registration make it hard to tell: a kubelet that pulls a present image
// again to check the pod's credentials, and a node deleted and registered
// again while the controller was away.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/images"
)

// TestRealNodeCredentialCheckPullsOwnNothing: a workload pulls a private
// image onto the node with one secret; a cache then asks for it with a
// secret of other credentials, on a node that lists part of its images
// (kubelet nodeStatusMaxImages: 1, the controller told so), so the node does
// not show it and the cache's Job asks the kubelet for it. With the kubelet's
// default policy (NeverVerifyPreloadedImages) the kubelet pulls it again to
// check those credentials, with a Pulling event as for an absent image; with
// NeverVerify it finds it present. Either way the purge keeps it, and keeps
// the image the cache's pull brought too: on such a node a Pulling event
// proves nothing. (Before: the re-pulled image was the cache's, and the
// purge removed the workload's image from the node.)
func TestRealNodeCredentialCheckPullsOwnNothing(t *testing.T) {
	rn := needRealNode(t)
	if rn.user2 == "" {
		t.Fatal("the real node's env file names no second registry user: bring it up again with hack/real-node-up.sh")
	}
	defer rn.restartKubelet(t)
	for i, c := range []struct {
		policy   string
		verifies bool
	}{
		{"NeverVerifyPreloadedImages", true},
		{"NeverVerify", false},
	} {
		t.Run(c.policy, func(t *testing.T) {
			rn.restartKubelet(t, "nodeStatusMaxImages: 1", "imagePullCredentialsVerificationPolicy: "+c.policy)
			workloadImage := rn.image(t, "shell", fmt.Sprintf("e2e/verified-workload:v%d-%d", i, time.Now().Unix()), true)
			cacheImage := rn.image(t, "shell", fmt.Sprintf("e2e/verified-cache:v%d-%d", i, time.Now().Unix()), true)
			large := rn.image(t, "large", fmt.Sprintf("e2e/verified-large:v%d-%d", i, time.Now().Unix()), false)
			for _, img := range []string{workloadImage, cacheImage} {
				if rn.present(t, img) {
					t.Fatalf("%s is on the node before the test", img)
				}
			}

			// The workload pulls its image with the first credentials, and
			// a larger one: the node lists a larger image in its place.
			workloads := newNamespace(t, "real-verify-workload")
			rn.pullSecretOf(t, workloads, "first", rn.user, rn.password)
			workloadPod(t, rn, workloads, "app", "first", workloadImage, large)
			if !rn.present(t, workloadImage) {
				t.Fatalf("the workload's image %s is not on the node", workloadImage)
			}
			waitFor(t, 90*time.Second, "the node to list one image, larger than "+workloadImage, func() bool {
				n, err := kubeClient.CoreV1().Nodes().Get(context.Background(), rn.name, metav1.GetOptions{})
				return err == nil && len(n.Status.Images) == 1 && !rn.reported(t, workloadImage)
			})

			// The cache asks for it, and another, with the second.
			ns := newNamespace(t, "real-verify-cache")
			rn.pullSecretOf(t, ns, "second", rn.user2, rn.password2)
			rn.controller(t, "--node-status-max-images=1")
			applyCacheSpec(t, ns, "  imagePullSecrets: [{name: second}]\n  cacheSpec:\n"+
				imageList(workloadImage, cacheImage)+onRealNode(rn))
			ic := waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
			if p := ic.Status.Pulls; p.Succeeded != 2 || p.AlreadyPresent != 0 {
				t.Fatalf("pulls %+v, want both pulled by a Job (the node lists neither)", p)
			}
			pulling := kubeletEvents(t, ns, "Pulling")
			if got := slices.ContainsFunc(pulling, func(m string) bool { return strings.Contains(m, workloadImage) }); got != c.verifies {
				t.Errorf("with %s, the kubelet's Pulling event for the present %s: %v, want %v (events: %q)", c.policy,
					workloadImage, got, c.verifies, pulling)
			}
			led := ledgerOf(t, ic)
			for _, img := range []string{workloadImage, cacheImage} {
				if key, _ := images.Normalize(img); led.Owned(rn.name, key) {
					t.Errorf("%s is the cache's on a node that lists part of its images", img)
				}
			}

			ic = annotateAndWait(t, ns, "app", v1alpha2.AnnotationPurge, v1alpha2.ImageCacheReasonPurge)
			if want := "Removed 0 of 2 images on 1 node; 2 kept (2 not pulled there by this cache)"; ic.Status.Message != want {
				t.Errorf("purge: %q, want %q", ic.Status.Message, want)
			}
			for _, img := range []string{workloadImage, cacheImage} {
				if !rn.present(t, img) {
					t.Errorf("%s was removed from the node by the purge", img)
				}
			}
			t.Logf("%s: Pulling events %q; purge: %s", c.policy, pulling, ic.Status.Message)
		})
	}
}

// TestRealNodeReplacedWhileControllerDown: the node is deleted and
// registers again, with a new UID, while the controller is down for longer
// than the refresh period. The refresh that starts when it is back does not
// give the new node the old one's ownership: the purge keeps the image,
// which the new node had before any cache pulled onto it. (Before: the
// refresh's start took the old node's owned images for the new node's, and
// the purge removed the image.)
func TestRealNodeReplacedWhileControllerDown(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-replaced")
	img := rn.image(t, "shell", fmt.Sprintf("e2e/replaced:v%d", time.Now().Unix()), false)
	key, _ := images.Normalize(img)
	node, err := kubeClient.CoreV1().Nodes().Get(context.Background(), rn.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer restoreTaints(t, rn.name, node.Spec.Taints)

	const refresh = time.Minute
	p := rn.controller(t, fmt.Sprintf("--image-cache-refresh-frequency=%v", refresh))
	applyCache(t, ns, imageList(img)+onRealNode(rn))
	ic := waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if !ledgerOf(t, ic).Owned(rn.name, key) {
		t.Fatalf("%s is not the cache's after its pull: %s", img, ic.Status.Message)
	}
	p.stop(t)
	stopped := time.Now()

	if err := kubeClient.CoreV1().Nodes().Delete(context.Background(), rn.name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rn.restartKubelet(t)
	again, err := kubeClient.CoreV1().Nodes().Get(context.Background(), rn.name, metav1.GetOptions{})
	if err != nil || again.UID == node.UID {
		t.Fatalf("the node did not register again with a new UID: %v (UID %s, before %s)", err, again.UID, node.UID)
	}
	waitFor(t, 90*time.Second, "the new node to list "+img, func() bool { return rn.reported(t, img) })
	// The scenario: the controller stays down past the refresh period.
	if left := refresh + 5*time.Second - time.Since(stopped); left > 0 {
		<-time.After(left)
	}

	back := time.Now()
	rn.controller(t, fmt.Sprintf("--image-cache-refresh-frequency=%v", refresh))
	ic = waitIC(t, ns, "app", 2*time.Minute, "the refresh to succeed", func(ic *v1alpha2.ImageCache) bool {
		return ic.Status.Reason == v1alpha2.ImageCacheReasonRefresh && ic.Status.StartTime != nil &&
			!ic.Status.StartTime.Time.Before(back.Truncate(time.Second)) && done(v1alpha2.ImageCacheActionStatusSucceeded)(ic)
	})
	refreshed := ic.Status.Message
	if ledgerOf(t, ic).Owned(rn.name, key) {
		t.Errorf("after the refresh, %s is the cache's on the new node", img)
	}
	if replaced := cacheEvents(t, ns, "NodesReplaced"); len(replaced) == 0 {
		t.Error("no NodesReplaced event on the cache")
	}

	ic = annotateAndWait(t, ns, "app", v1alpha2.AnnotationPurge, v1alpha2.ImageCacheReasonPurge)
	if !rn.present(t, img) {
		t.Errorf("the purge removed %s from the new node: %s", img, ic.Status.Message)
	}
	t.Logf("node UID %s -> %s; refresh: %s; purge: %s", node.UID, again.UID, refreshed, ic.Status.Message)
}

// workloadPod runs a pod of the images on the real node with a pull
// secret, as a workload would, and waits until the kubelet has pulled them.
func workloadPod(t *testing.T, rn *realNode, ns, name, secret string, images ...string) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
		NodeSelector:     map[string]string{"kubernetes.io/hostname": rn.name},
		Tolerations:      []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
		RestartPolicy:    corev1.RestartPolicyNever,
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: secret}},
	}}
	for i, img := range images {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: fmt.Sprintf("app-%d", i), Image: img,
			ImagePullPolicy: corev1.PullIfNotPresent})
	}
	if _, err := kubeClient.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, fmt.Sprintf("the kubelet to pull %v for pod %s", images, name), func() bool {
		pulled := kubeletEvents(t, ns, "Pulled")
		for _, img := range images {
			if !slices.ContainsFunc(pulled, func(m string) bool { return strings.Contains(m, `"`+img+`"`) }) {
				return false
			}
		}
		return true
	})
}

// kubeletEvents returns the messages of the events of a reason on the pods
// of a namespace.
func kubeletEvents(t *testing.T, ns, reason string) []string {
	t.Helper()
	return eventMessages(t, ns, "involvedObject.kind=Pod,reason="+reason)
}

// cacheEvents returns the messages of the controller's events of a reason
// on the ImageCaches of a namespace.
func cacheEvents(t *testing.T, ns, reason string) []string {
	t.Helper()
	return eventMessages(t, ns, "involvedObject.kind=ImageCache,reason="+reason)
}

func eventMessages(t *testing.T, ns, selector string) []string {
	t.Helper()
	list, err := kubeClient.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Message)
	}
	return out
}

// restoreTaints gives the node back the taints it had: one registered again
// has its startup taint, which a test may have removed before.
func restoreTaints(t *testing.T, node string, taints []corev1.Taint) {
	t.Helper()
	waitFor(t, 30*time.Second, "the node's taints to be put back", func() bool {
		n, err := kubeClient.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
		if err != nil {
			return false
		}
		n.Spec.Taints = taints
		_, err = kubeClient.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{})
		return err == nil
	})
}

// TestRealNodePullMetrics: after a cache of two images of known sizes
// (their size as the node's runtime reports it) is pulled onto the real
// node, the controller's bytes-pulled counter has grown by their sum, and
// its histogram of the kubelet's pull times counts two pulls.
func TestRealNodePullMetrics(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-metrics")
	stamp := time.Now().Unix()
	imgs := []string{rn.image(t, "shell", fmt.Sprintf("e2e/metrics-shell:v%d", stamp), false),
		rn.image(t, "large", fmt.Sprintf("e2e/metrics-large:v%d", stamp), false)}
	// A controller of its own: its counters start at zero.
	p := rn.controller(t)
	const bytesSample, countSample = "kubefledged_image_pulled_bytes_total", `kubefledged_image_pull_seconds_count{result="pulled"}`
	ic := applyAndTime(t, ns, imageList(imgs...)+onRealNode(rn), v1alpha2.ImageCacheActionStatusSucceeded)
	if ic.Status.Pulls.Succeeded != 2 || ic.Status.Pulls.AlreadyPresent != 0 {
		t.Fatalf("pulls %+v, want two pulled", ic.Status.Pulls)
	}
	var want float64
	for _, img := range imgs {
		want += float64(rn.size(t, img))
	}
	// The status is written in the pass that reads the pulls, and the
	// metrics with it.
	var bytes, count float64
	waitFor(t, 30*time.Second, fmt.Sprintf("the metrics of the two pulls (%v bytes)", want), func() bool {
		bytes, _ = scrape(p.metricsAddr, bytesSample)
		count, _ = scrape(p.metricsAddr, countSample)
		return count == 2 && bytes == want
	})
	t.Logf("pulled %d bytes in %v pulls; sum of %s: %v", int64(bytes), count, `kubefledged_image_pull_seconds{result="pulled"}`,
		p.metric(t, `kubefledged_image_pull_seconds_sum{result="pulled"}`))
}
