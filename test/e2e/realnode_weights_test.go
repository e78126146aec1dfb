//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/test/framework"
)

// weightsMiB is the size of the "model weights" image's one data layer.
const weightsMiB = 256

// TestRealNodeModelWeightsImage: a "model weights" image, built FROM
// scratch with one large data layer and no binary or command, is cached as
// any other image; then a pod mounts it as an image volume (Kubernetes 1.36
// and containerd 2) and finds the data there, with the kubelet pulling
// nothing.
func TestRealNodeModelWeightsImage(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-weights")
	img, err := framework.LargeImage(weightsMiB, uint64(time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	weights := fmt.Sprintf("%s/e2e/model-weights:%d", rn.registry, time.Now().UnixNano())
	if err := framework.PushImage(img, weights, "", ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rn.removeFromNode(t, weights) })
	shell := rn.image(t, "shell", "e2e/weights-reader:v1", false)

	rn.controller(t)
	applyCache(t, ns, imageList(weights, shell)+onRealNode(rn))
	ic := waitIC(t, ns, "app", 5*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if ic.Status.Pulls.Succeeded != 2 || !rn.present(t, weights) {
		t.Fatalf("the cache: %s; the weights on the node: %v", ic.Status.Message, rn.present(t, weights))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "inference"}, Spec: corev1.PodSpec{
		NodeSelector:  map[string]string{"kubernetes.io/hostname": rn.name},
		Tolerations:   []corev1.Toleration{{Key: warmingTaint, Operator: corev1.TolerationOpExists}},
		RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{Name: "app", Image: shell, ImagePullPolicy: corev1.PullIfNotPresent,
			// The data layer where the volume mounts it (the image has a
			// shell and no other tool: test -s).
			Command:      []string{"/bin/sh", "-c", "test -s /weights/data/blob"},
			VolumeMounts: []corev1.VolumeMount{{Name: "weights", MountPath: "/weights", ReadOnly: true}}}},
		Volumes: []corev1.Volume{{Name: "weights", VolumeSource: corev1.VolumeSource{
			Image: &corev1.ImageVolumeSource{Reference: weights, PullPolicy: corev1.PullIfNotPresent}}}},
	}}
	if _, err := kubeClient.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *corev1.Pod
	waitFor(t, 3*time.Minute, "the pod reading the weights to end", func() bool {
		got, err = kubeClient.CoreV1().Pods(ns).Get(ctx, "inference", metav1.GetOptions{})
		return err == nil && (got.Status.Phase == corev1.PodSucceeded || got.Status.Phase == corev1.PodFailed)
	})
	if got.Status.Phase != corev1.PodSucceeded {
		t.Errorf("the pod %s: %+v; want it to find the weights in its image volume", got.Status.Phase, got.Status.ContainerStatuses)
	}
	events, err := kubeClient.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=inference"})
	if err != nil {
		t.Fatal(err)
	}
	var pulls []string
	for _, e := range events.Items {
		if e.Reason == "Pulled" || e.Reason == "Pulling" {
			pulls = append(pulls, e.Reason+": "+e.Message)
			if strings.Contains(e.Message, "Successfully pulled") || e.Reason == "Pulling" {
				t.Errorf("the kubelet pulled for the pod: %s %s", e.Reason, e.Message)
			}
		}
	}
	t.Logf("%d MiB weights image cached (%s); the pod mounted it as an image volume and read it: %s; the kubelet's events: %q",
		weightsMiB, ic.Status.Message, got.Status.Phase, pulls)
}
