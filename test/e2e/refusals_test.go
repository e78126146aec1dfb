//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// TestPolicyRefusesOneNode: a ValidatingAdmissionPolicy refuses the Jobs
// for one node. That node's pulls fail with the policy's message, the other
// nodes' succeed, and kubectl describe shows the refusal.
func TestPolicyRefusesOneNode(t *testing.T) {
	ns := newNamespace(t, "policy")
	const refused, message = "kwok-node-2", "e2e policy: no image pulls on kwok-node-2"
	name := ns + "-no-pulls"
	kubectlIn(t, fmt.Sprintf(`apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: %[1]s}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [batch], apiVersions: [v1], operations: [CREATE], resources: [jobs]}
  validations:
  - expression: "!has(object.metadata.annotations) || object.metadata.annotations[?'%[2]s'].orValue('') != '%[3]s'"
    message: "%[4]s"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: %[1]s}
spec:
  policyName: %[1]s
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: %[5]s}
`, name, puller.AnnotationNode, refused, message, ns), "apply", "-f", "-")
	t.Cleanup(func() {
		kubectl(t, "delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", name, "--ignore-not-found")
	})
	// The API server applies a new policy within a second or so.
	probe := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Annotations: map[string]string{puller.AnnotationNode: refused}},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
	}
	waitFor(t, 30*time.Second, "the policy to be enforced", func() bool {
		_, err := kubeClient.BatchV1().Jobs(ns).Create(context.Background(), probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), message)
	})

	startController(t)
	ic := applyAndTime(t, ns, `
  - images: [docker.io/library/nginx:1.27, docker.io/library/redis:7.4]
    nodeSelector: {type: kwok}
`, v1alpha2.ImageCacheActionStatusFailed)
	if p := ic.Status.Pulls; p.Succeeded != p.Desired-2 || p.Failed != 2 {
		t.Errorf("pulls %+v, want all but the 2 of %s succeeded", p, refused)
	}
	for img, list := range ic.Status.Failures {
		if len(list) != 1 || list[0].Node != refused || list[0].Reason != "JobRejected" || !strings.Contains(list[0].Message, message) {
			t.Errorf("failures of %s: %+v, want one on %s, JobRejected, with the policy's message", img, list, refused)
		}
	}
	if len(ic.Status.Failures) != 2 {
		t.Errorf("failures for %d images, want 2", len(ic.Status.Failures))
	}
	c := meta.FindStatusCondition(ic.Status.Conditions, v1alpha2.ConditionJobsRejected)
	if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, message) {
		t.Errorf("JobsRejected %+v", c)
	}
	out := kubectl(t, "describe", "ic", "-n", ns, "app")
	if !strings.Contains(out, "JobRejected") || !strings.Contains(out, message) {
		t.Errorf("kubectl describe ic does not show the refusal:\n%s", out)
	}
}

// TestQuotaOfOneJob: a ResourceQuota allows one Job in the namespace, a
// cache wants one on each of 5 nodes. A quota's refusal is transient: the
// pulls wait, with QuotaExceeded events, the cache's finished Jobs go to
// make room (they count against the quota), and every node is cached in
// turn.
func TestQuotaOfOneJob(t *testing.T) {
	ns := newNamespace(t, "quota")
	kubectlIn(t, `apiVersion: v1
kind: ResourceQuota
metadata: {name: one-job}
spec:
  hard: {count/jobs.batch: "1"}
`, "apply", "-n", ns, "-f", "-")
	waitFor(t, 30*time.Second, "the quota to be counted", func() bool {
		q, err := kubeClient.CoreV1().ResourceQuotas(ns).Get(context.Background(), "one-job", metav1.GetOptions{})
		return err == nil && q.Status.Hard != nil
	})
	startController(t)
	ic := applyAndTime(t, ns, `
  - images: [docker.io/library/nginx:1.27, docker.io/library/redis:7.4]
    nodeSelector: {tier: backend}
`, v1alpha2.ImageCacheActionStatusSucceeded)
	if p := ic.Status.Pulls; p.Desired != 10 || p.Succeeded != 10 || p.Failed != 0 {
		t.Errorf("pulls %+v, want all 10 pulled, in turn", p)
	}
	events, err := kubeClient.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	quoted := false
	for _, e := range events.Items {
		quoted = quoted || (e.Reason == "QuotaExceeded" && strings.Contains(e.Message, "exceeded quota: one-job"))
	}
	if !quoted {
		t.Error("no QuotaExceeded event quoting the quota")
	}
}

// TestFairShareWithAHangingCache: with --max-in-flight-jobs=4 and one image
// per Job, a cache whose pulls hang until the pull deadline (10s) holds every
// slot when a second cache arrives; it has three rounds of Jobs to go. When
// its first Jobs end, it gets only its share, 2 slots, while the second
// wants more, so the second finishes first, rather than after all of the
// hanging cache's rounds.
func TestFairShareWithAHangingCache(t *testing.T) {
	hangNodes := nodeList("fair-hang", 4)
	addNodes(t, hangNodes, map[string]string{"e2e": "fair-hang"})
	hangNS, webNS := newNamespace(t, "hang"), newNamespace(t, "web")
	// Each hanging pull holds its slot for 20s: while the second cache runs
	// on its share, the hanging one cannot end, whatever the machine's load.
	// Its pulls are not tried again, so that it ends.
	p := startController(t, "--max-in-flight-jobs=4", "--images-per-job=1", "--image-pull-deadline-duration=20s",
		"--pull-retry-deadline=0")
	jw := watchJobs(t, hangNS)
	applyCache(t, hangNS, `
  - images: [hang.invalid/e2e/slow:v1, hang.invalid/e2e/slow:v2, hang.invalid/e2e/slow:v3]
    nodeSelector: {e2e: fair-hang}
`)
	waitFor(t, time.Minute, "the hanging cache to hold all 4 slots", func() bool {
		return jw.Count() == 4 && p.metric(t, "kubefledged_jobs_in_flight") == 4
	})
	start := time.Now()
	applyCache(t, webNS, `
  - images: [docker.io/library/nginx:1.27]
    nodeSelector: {type: kwok}
`)
	web := waitIC(t, webNS, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	hang := getIC(t, hangNS, "app")
	t.Logf("the second cache Succeeded in %v (%s); the hanging one had made %d Jobs and was %s (%s)",
		time.Since(start).Round(100*time.Millisecond), web.Status.Message, jw.Count(), hang.Status.Status, hang.Status.Message)
	if want := int32(baseNodes + len(hangNodes)); web.Status.Pulls.Succeeded != want { // every kwok node
		t.Errorf("second cache: pulls %+v, want %d pulled", web.Status.Pulls, want)
	}
	if hang.Status.Status != v1alpha2.ImageCacheActionStatusProcessing {
		t.Errorf("the hanging cache is %s: the second cache waited for all of it, not for its share of the slots", hang.Status.Status)
	}
	hang = waitIC(t, hangNS, "app", 3*time.Minute, "Failed", done(v1alpha2.ImageCacheActionStatusFailed))
	for img, list := range hang.Status.Failures {
		for _, f := range list {
			if f.Reason != "DeadlineExceeded" {
				t.Errorf("hanging pull of %s on %s: %s %q, want DeadlineExceeded", img, f.Node, f.Reason, f.Message)
			}
		}
	}
	t.Logf("the hanging cache ended in %v: %s", time.Since(start).Round(100*time.Millisecond), hang.Status.Message)
}
