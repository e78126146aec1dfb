package puller

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// The pull pods pass Pod Security "restricted", the level application
// namespaces often enforce, as the PodSecurity admission plugin judges it.
// Delete pods need root and the runtime's socket: they must not pass it.
func TestPullPodsPassRestricted(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	restricted := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", UID: "u"},
		Spec: v1alpha2.ImageCacheSpec{ImagePullSecrets: []v1alpha2.ImagePullSecret{{Name: "regcred"}}}}
	cfg := Config{HelperImage: "registry.local/kube-fledged:v1", PullPolicy: corev1.PullIfNotPresent, PullDeadline: time.Minute,
		ServiceAccountName: "puller", PriorityClassName: "high"}

	pull := NewPullJob(cfg, Batch{Cache: ic, NodeName: "n", Hostname: "n", Images: []string{"nginx:1.27", "redis", "busybox"}, Epoch: 1})
	tmpl := pull.Spec.Template
	for _, r := range evaluator.EvaluatePod(restricted, &tmpl.ObjectMeta, &tmpl.Spec) {
		if !r.Allowed {
			t.Errorf("pull pod refused by Pod Security restricted: %s: %s", r.ForbiddenReason, r.ForbiddenDetail)
		}
	}
	if sc := tmpl.Spec.SecurityContext; sc == nil || *sc.RunAsUser != PullPodUser || *sc.RunAsGroup != PullPodUser || !*sc.RunAsNonRoot {
		t.Errorf("pull pod security context %+v: want a fixed non-root user, whatever the images declare", sc)
	}

	del := NewDeleteJob(cfg, DeleteBatch{Cache: ic, NodeName: "n", Hostname: "n", Images: []string{"nginx:1.27"}, Epoch: 1,
		Socket: "/run/containerd/containerd.sock"})
	tmpl = del.Spec.Template
	allowed := true
	for _, r := range evaluator.EvaluatePod(restricted, &tmpl.ObjectMeta, &tmpl.Spec) {
		allowed = allowed && r.Allowed
	}
	if allowed {
		t.Error("the delete pod passes restricted; it runs as root with a hostPath socket, so the check cannot tell")
	}
}
