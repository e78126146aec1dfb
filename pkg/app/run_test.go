package app

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"kubefledged.io/kube-fledged/pkg/options"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// TestJobTolerations: the pull and delete pods tolerate what a DaemonSet's
// pods do, the startup taint the controller removes, and what the flag adds;
// not every taint.
func TestJobTolerations(t *testing.T) {
	o := options.New()
	if diff := cmp.Diff(puller.DefaultTolerations(), JobTolerations(o)); diff != "" {
		t.Errorf("by default (-want +got):\n%s", diff)
	}
	o.NodeStartupTaint = "kubefledged.io/warming"
	o.JobTolerations = []string{"nvidia.com/gpu:NoSchedule"}
	want := append(puller.DefaultTolerations(),
		corev1.Toleration{Key: "kubefledged.io/warming", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		corev1.Toleration{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
	if diff := cmp.Diff(want, JobTolerations(o)); diff != "" {
		t.Errorf("with the startup taint and a flag (-want +got):\n%s", diff)
	}
	if cfg := ControllerConfig(o); !cmp.Equal(cfg.HelperArchitectures, []string{"amd64", "arm64"}) ||
		!cmp.Equal(cfg.Puller.Tolerations, want) {
		t.Errorf("controller config: architectures %v, tolerations %v", cfg.HelperArchitectures, cfg.Puller.Tolerations)
	}
}

// TestJobResources: the flags' defaults are puller.DefaultResources; both
// emptied, the containers ask for nothing.
func TestJobResources(t *testing.T) {
	o := options.New()
	if got := ControllerConfig(o).Puller.Resources; !cmp.Equal(got, puller.DefaultResources()) {
		t.Errorf("by default: %v, want %v", got, puller.DefaultResources())
	}
	o.JobContainerRequests, o.JobContainerLimits = "", ""
	if got := ControllerConfig(o).Puller.Resources; len(got.Requests) != 0 || len(got.Limits) != 0 || got.Requests == nil {
		t.Errorf("emptied: %#v, want no request or limit", got)
	}
}
