package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/options"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// TestStatusOfHugeFailingCacheFits: 5,000 nodes × 100 images, every pull
// failing with a long message (a ValidatingAdmissionPolicy refuses every
// Job). The status write succeeds, the object stays under 1 MiB, and the
// message says how many failures it leaves out.
func TestStatusOfHugeFailingCacheFits(t *testing.T) {
	const nodes, images = 5000, 100
	ctx := context.Background()
	ns := testNamespace(t, "huge")
	cfg := *cp.Config
	cfg.QPS, cfg.Burst = 2000, 2000
	fast := kubernetes.NewForConfigOrDie(&cfg)

	// The policy's message is as long as a kubelet's.
	reason := "e2e policy: image pulls are not allowed in this namespace; " + strings.Repeat("the registry mirror is being migrated, ", 8) + "ask the platform team"
	policy := "no-pulls-" + ns
	fail := admissionv1.Fail
	if _, err := fast.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: policy},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{Operations: []admissionv1.OperationType{admissionv1.Create},
					Rule: admissionv1.Rule{APIGroups: []string{"batch"}, APIVersions: []string{"v1"}, Resources: []string{"jobs"}}},
			}}},
			Validations: []admissionv1.Validation{{Expression: "false", Message: reason}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := fast.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policy},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: policy, ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = fast.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(context.Background(), policy, metav1.DeleteOptions{})
		_ = fast.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(context.Background(), policy, metav1.DeleteOptions{})
	})
	probe := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "probe"}, Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}}
	waitFor(t, 30*time.Second, "the policy to be enforced", func() (bool, error) {
		_, err := fast.BatchV1().Jobs(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), "registry mirror"), nil
	})

	start := time.Now()
	label := "huge-" + ns
	createNodes(t, fast, label, nodes)
	t.Logf("%d nodes created in %v", nodes, time.Since(start).Round(time.Second))

	var imgs []string
	for i := range images {
		imgs = append(imgs, fmt.Sprintf("registry.example/team/service-%03d:v1.2.3", i))
	}
	runController(t, func(o *options.Options) {
		o.KubeAPIQPS, o.KubeAPIBurst = 2000, 2000
		o.ImagesPerJob = images
	})
	start = time.Now()
	createCache(t, ns, "huge", entry(map[string]v1alpha2.LabelValue{"e2e": v1alpha2.LabelValue(label)}, imgs...))
	// 5,000 refused Jobs take about two minutes on two cores, more when
	// the machine is busy: the deadline is for a cache that never ends.
	ic := waitStatus(t, ns, "huge", v1alpha2.ImageCacheActionStatusFailed, 10*time.Minute)
	t.Logf("Failed in %v: %s", time.Since(start).Round(time.Second), ic.Status.Message)

	raw, err := fast.RESTClient().Get().AbsPath("/apis/kubefledged.io/v1alpha2/namespaces", ns, "imagecaches", "huge").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the ImageCache is %d KiB as JSON", len(raw)>>10)
	if len(raw) >= 1<<20 {
		t.Errorf("the ImageCache is %d bytes, not under 1 MiB", len(raw))
	}
	if p := ic.Status.Pulls; p.Desired != nodes*images || p.Failed != nodes*images {
		t.Errorf("pulls %+v, want all %d failed", p, nodes*images)
	}
	listed := 0
	for img, list := range ic.Status.Failures {
		listed += len(list)
		for _, f := range list {
			if f.Reason != "JobRejected" || len(f.Message) > 512 || !strings.HasSuffix(f.Message, "ask the platform team") {
				t.Fatalf("failure of %s on %s: %s %q (%d bytes)", img, f.Node, f.Reason, f.Message, len(f.Message))
			}
		}
	}
	omitted := 0
	for _, n := range ic.Status.OmittedFailures {
		omitted += int(n)
	}
	if listed == 0 || listed > v1alpha2.MaxFailures || listed+omitted != nodes*images {
		t.Errorf("%d failures listed and %d omitted, want at most %d listed and %d in all", listed, omitted, v1alpha2.MaxFailures, nodes*images)
	}
	if want := fmt.Sprintf("(%d not listed in status.failures)", omitted); !strings.Contains(ic.Status.Message, want) {
		t.Errorf("message %q does not say %s", ic.Status.Message, want)
	}
	led, err := fledgedtest.LoadLedger(ctx, fledged, ic)
	if err != nil {
		t.Fatal(err)
	}
	if led.NodeCount() != nodes {
		t.Errorf("the ledger records %d nodes, want %d", led.NodeCount(), nodes)
	}
}

// createNodes makes n Ready nodes labelled e2e=label, in parallel, and
// deletes them all with one call when the test ends.
func createNodes(t *testing.T, client kubernetes.Interface, label string, n int) {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() {
		_ = client.CoreV1().Nodes().DeleteCollection(context.Background(), metav1.DeleteOptions{},
			metav1.ListOptions{LabelSelector: "e2e=" + label})
	})
	names := make(chan string)
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for name := range names {
				node, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
					Labels: map[string]string{puller.HostnameLabel: name, "e2e": label}}}, metav1.CreateOptions{})
				if err == nil {
					node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
						Reason: "KubeletReady", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
					_, err = client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range n {
		names <- fmt.Sprintf("%s-%05d", label, i)
	}
	close(names)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}
