//go:build e2e

package e2e

// The swap from upstream kube-fledged v0.10, as docs/migrate-from-upstream.md
// tells it, on the test bed.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// upstreamCRD has the shape of upstream v0.10's CRD for ImageCache: the
// same group, version and names, its smaller schema, no status subresource
// (its controller writes the status with the object).
const upstreamCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: imagecaches.kubefledged.io
  labels: {app: kubefledged, kubefledged: kubefledged-controller}
spec:
  group: kubefledged.io
  scope: Namespaced
  names: {plural: imagecaches, singular: imagecache, kind: ImageCache, shortNames: [ic]}
  versions:
  - name: v1alpha2
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        required: [spec]
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            required: [cacheSpec]
            properties:
              cacheSpec:
                type: array
                items:
                  type: object
                  required: [images]
                  properties:
                    images: {type: array, items: {type: string}}
                    nodeSelector: {type: object, additionalProperties: {type: string}}
              imagePullSecrets:
                type: array
                items: {type: object, properties: {name: {type: string}}}
          status:
            type: object
            required: [message, reason, startTime, status]
            properties:
              status: {type: string}
              reason: {type: string}
              message: {type: string}
              startTime: {type: string, format: date-time}
              completionTime: {type: string, format: date-time}
              failures:
                type: object
                additionalProperties:
                  type: array
                  items:
                    type: object
                    required: [message, node, reason]
                    properties: {node: {type: string}, reason: {type: string}, message: {type: string}}
`

// upstreamArgs are upstream's controller arguments: its manifest's, its
// develop branch's --jobs-max-surge, and glog's --logtostderr.
var upstreamArgs = []string{"--stderrthreshold=INFO", "--image-pull-deadline-duration=5m", "--image-cache-refresh-frequency=15m",
	"--image-pull-policy=IfNotPresent", "--jobs-max-surge=50", "--logtostderr"}

// TestRealNodeUpstreamSwap: a cluster as upstream v0.10 leaves it (its CRD,
// a cache it finished, its webhook configuration whose server is gone and
// which refuses every ImageCache write, its controller scaled to zero) is
// swapped as the guide says: the webhook configuration and the Deployment
// deleted, the CRD applied server-side over upstream's, this controller
// installed with upstream's command, arguments and environment. It starts,
// warns once for each legacy flag and variable, and adopts the cache, which
// ends Succeeded for its generation with the new status.
func TestRealNodeUpstreamSwap(t *testing.T) {
	rn := needInCluster(t)
	ctx := context.Background()
	ourCRD := filepath.Join(projectRoot, "deploy/crd/kubefledged.io_imagecaches.yaml")
	t.Cleanup(func() {
		// Whatever happened, the other tests get the project's CRD back.
		if out, err := exec.Command(kubectlBin, "--kubeconfig", kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", ourCRD).CombinedOutput(); err != nil {
			t.Errorf("restoring the CRD: %v\n%s", err, out)
		}
	})
	// As upstream installed it: its CRD in place of the project's.
	kubectlIn(t, upstreamCRD, "replace", "-f", "-")
	waitFor(t, time.Minute, "upstream's CRD to serve, without a status subresource", func() bool {
		crd := kubectl(t, "get", "crd", "imagecaches.kubefledged.io", "-o", "jsonpath={.spec.versions[0].subresources}{.status.conditions[?(@.type=='Established')].status}")
		return crd == "True"
	})

	// A cache upstream finished, its status written with the object.
	apps := newNamespace(t, "upstream")
	images := []string{rn.image(t, "shell", "e2e/upstream-a:v1", false), rn.image(t, "shell", "e2e/upstream-b:v1", false)}
	started := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
	ic := &v1alpha2.ImageCache{
		ObjectMeta: metav1.ObjectMeta{Name: "imagecache1", Namespace: apps},
		Spec:       v1alpha2.ImageCacheSpec{CacheSpec: []v1alpha2.CacheSpecImages{{Images: images}}},
		Status: v1alpha2.ImageCacheStatus{Status: v1alpha2.ImageCacheActionStatusSucceeded, Reason: "ImageCacheCreate",
			Message: "All requested images pulled succesfully to respective nodes", StartTime: &started, CompletionTime: &started},
	}
	t.Cleanup(func() {
		_ = fledged.KubefledgedV1alpha2().ImageCaches(apps).Delete(context.Background(), "imagecache1", metav1.DeleteOptions{})
	})
	// Until the API server serves upstream's CRD, a create drops the
	// status (the status subresource): written again until it holds.
	waitFor(t, time.Minute, "upstream's cache written with its status", func() bool {
		_ = fledged.KubefledgedV1alpha2().ImageCaches(apps).Delete(ctx, "imagecache1", metav1.DeleteOptions{})
		if _, err := fledged.KubefledgedV1alpha2().ImageCaches(apps).Create(ctx, ic, metav1.CreateOptions{}); err != nil {
			return false
		}
		got, err := fledged.KubefledgedV1alpha2().ImageCaches(apps).Get(ctx, "imagecache1", metav1.GetOptions{})
		return err == nil && got.Status.Status == v1alpha2.ImageCacheActionStatusSucceeded
	})

	// Upstream's webhook configuration, its server gone: every write refused.
	fail := admissionv1.Fail
	none := admissionv1.SideEffectClassNone
	webhook := &admissionv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "kubefledged-webhook-server"},
		Webhooks: []admissionv1.ValidatingWebhook{{
			Name:                    "validate-image-cache.kubefledged.io",
			AdmissionReviewVersions: []string{"v1beta1", "v1"},
			TimeoutSeconds:          ptr.To[int32](1),
			FailurePolicy:           &fail,
			SideEffects:             &none,
			ClientConfig: admissionv1.WebhookClientConfig{Service: &admissionv1.ServiceReference{
				Namespace: sampleNS, Name: "kubefledged-webhook-server", Path: ptr.To("/validate-image-cache"), Port: ptr.To[int32](3443)}},
			Rules: []admissionv1.RuleWithOperations{{
				Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
				Rule:       admissionv1.Rule{APIGroups: []string{"kubefledged.io"}, APIVersions: []string{"v1alpha2"}, Resources: []string{"imagecaches"}},
			}},
		}},
	}
	if _, err := kubeClient.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, webhook, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kubeClient.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), webhook.Name, metav1.DeleteOptions{})
	})
	// The second cache, as an operator applies one (upstream's CRD
	// requires a status with startTime: a client that sends an empty
	// status is refused for that first).
	second := fmt.Sprintf("apiVersion: kubefledged.io/v1alpha2\nkind: ImageCache\nmetadata: {name: imagecache2, namespace: %s}\nspec:\n  cacheSpec:\n  - images: [%s]\n", apps, images[0])
	create := func() (string, error) {
		cmd := exec.Command(kubectlBin, "--kubeconfig", kubeconfig, "create", "-f", "-")
		cmd.Stdin = strings.NewReader(second)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	var refused string
	waitFor(t, time.Minute, "upstream's webhook configuration to refuse ImageCache writes", func() bool {
		out, err := create()
		if err == nil {
			_ = fledged.KubefledgedV1alpha2().ImageCaches(apps).Delete(ctx, "imagecache2", metav1.DeleteOptions{})
		}
		refused = strings.TrimSpace(out)
		return err != nil && strings.Contains(out, `failed calling webhook "validate-image-cache.kubefledged.io"`)
	})
	t.Logf("with upstream's webhook configuration left behind: %s", refused)

	// Upstream's controller, scaled to zero (the guide's first step).
	upstream := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "kubefledged-controller", Namespace: sampleNS},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubefledged": "kubefledged-controller"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"kubefledged": "kubefledged-controller"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "controller", Image: "senthilrch/kubefledged-controller:v0.10.0",
					Command: []string{"/opt/bin/kubefledged-controller"}, Args: upstreamArgs,
				}}},
			},
		},
	}
	if _, err := kubeClient.AppsV1().Deployments(sampleNS).Create(ctx, upstream, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kubeClient.AppsV1().Deployments(sampleNS).Delete(context.Background(), upstream.Name, metav1.DeleteOptions{})
	})

	// The swap: the webhook configuration and upstream's Deployment go,
	// the CRD is applied server-side over upstream's.
	if err := kubeClient.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, webhook.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := kubeClient.AppsV1().Deployments(sampleNS).Delete(ctx, upstream.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "apply", "--server-side", "--force-conflicts", "-f", ourCRD)
	waitFor(t, time.Minute, "the project's CRD to serve, with its status subresource", func() bool {
		return kubectl(t, "get", "crd", "imagecaches.kubefledged.io", "-o", "jsonpath={.spec.versions[0].subresources.status}") == "{}"
	})
	waitFor(t, time.Minute, "ImageCache writes to be taken again", func() bool {
		out, err := create()
		return err == nil || strings.Contains(out, "AlreadyExists")
	})
	t.Cleanup(func() {
		_ = fledged.KubefledgedV1alpha2().ImageCaches(apps).Delete(context.Background(), "imagecache2", metav1.DeleteOptions{})
	})

	// This controller, with upstream's command, arguments and environment
	// (and the toleration the real node's startup taint asks for).
	args := append(append([]string(nil), upstreamArgs...), "--job-tolerations="+startupTaintKey+":NoSchedule")
	patch := filepath.Join(t.TempDir(), "patch.yaml")
	if err := os.WriteFile(patch, []byte(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: kube-fledged
spec:
  replicas: 1
  template:
    spec:
      nodeSelector:
        %s: %s
      tolerations:
      - {key: %s, operator: Exists, effect: NoSchedule}
      containers:
      - name: fledged
        command: [/opt/bin/kubefledged-controller]
        args: ["%s"]
        env:
        - {name: KUBEFLEDGED_CRI_CLIENT_IMAGE, value: "senthilrch/kubefledged-cri-client:v0.10.0"}
        - {name: BUSYBOX_IMAGE, value: "senthilrch/busybox:1.35.0"}
`, puller.HostnameLabel, rn.name, startupTaintKey, strings.Join(args, `", "`))), 0o644); err != nil {
		t.Fatal(err)
	}
	makeDeploy(t, rn, patch)
	pods := controllerPods(t, rn, sampleNS, "kube-fledged", 1)
	if c := pods[0].Spec.Containers[0]; strings.Join(c.Command, " ") != "/opt/bin/kubefledged-controller" || strings.Join(c.Args, " ") != strings.Join(args, " ") {
		t.Fatalf("the controller runs %v %v", c.Command, c.Args)
	}

	// It adopts the cache: an operation for its generation, Succeeded,
	// with the status upstream's CRD did not have.
	got := waitIC(t, apps, "imagecache1", 4*time.Minute, "Succeeded for its generation", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if got.Status.Pulls.Desired == 0 || got.Status.Pulls.Succeeded != got.Status.Pulls.Desired || got.Status.Ledger == nil || len(got.Status.Conditions) == 0 {
		t.Errorf("the adopted cache: pulls %+v, ledger %v, conditions %v: %s", got.Status.Pulls, got.Status.Ledger != nil, got.Status.Conditions, got.Status.Message)
	}
	for _, img := range images {
		if !rn.present(t, img) {
			t.Errorf("%s is not on the real node", img)
		}
	}
	waitIC(t, apps, "imagecache2", 4*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	t.Logf("adopted: %s %s: %s", got.Status.Status, got.Status.Reason, got.Status.Message)

	// One warning for each legacy flag and variable.
	logs := kubectl(t, "logs", "-n", sampleNS, pods[0].Name)
	for _, want := range []string{"Flag --stderrthreshold has been deprecated", "Flag --logtostderr has been deprecated",
		"Flag --jobs-max-surge has been deprecated, use --max-in-flight-jobs", "$KUBEFLEDGED_CRI_CLIENT_IMAGE (senthilrch/kubefledged-cri-client:v0.10.0) is ignored",
		"$BUSYBOX_IMAGE (senthilrch/busybox:1.35.0) is ignored"} {
		if n := strings.Count(logs, want); n != 1 {
			t.Errorf("%q %d times in the controller's log, want once", want, n)
		}
	}
	if t.Failed() {
		t.Logf("the controller's log:\n%s", logs)
	}
}
