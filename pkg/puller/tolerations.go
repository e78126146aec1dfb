package puller

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultTolerations are about those the DaemonSet controller gives every
// DaemonSet pod: a pull goes on when its node stops answering for a while
// (not-ready and unreachable, NoExecute) and starts on a node under disk,
// memory or PID pressure. The not-ready and unreachable taints are tolerated
// with every effect: they follow the node's Ready condition, which the
// controller reads itself (a node that is not Ready is skipped), and may
// linger a moment after it. Not the unschedulable taint: a cordoned node is
// not pulled onto until it is uncordoned.
func DefaultTolerations() []corev1.Toleration {
	return []corev1.Toleration{
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists},
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists},
		{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	}
}

// ParseTolerations reads tolerations written KEY[=VALUE][:EFFECT] (no value:
// any value; no effect: every effect), or "*" for every taint.
func ParseTolerations(specs []string) ([]corev1.Toleration, error) {
	var out []corev1.Toleration
	for _, spec := range specs {
		spec = strings.TrimSpace(spec)
		if spec == "*" {
			out = append(out, corev1.Toleration{Operator: corev1.TolerationOpExists})
			continue
		}
		rest, effect, _ := strings.Cut(spec, ":")
		key, value, hasValue := strings.Cut(rest, "=")
		if errs := validation.IsQualifiedName(key); len(errs) > 0 {
			return nil, fmt.Errorf("toleration %q: key %q: %s", spec, key, strings.Join(errs, "; "))
		}
		t := corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffect(effect)}
		if hasValue {
			if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
				return nil, fmt.Errorf("toleration %q: value %q: %s", spec, value, strings.Join(errs, "; "))
			}
			t.Operator, t.Value = corev1.TolerationOpEqual, value
		}
		switch t.Effect {
		case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			return nil, fmt.Errorf("toleration %q: effect %q is not NoSchedule, PreferNoSchedule or NoExecute", spec, effect)
		}
		out = append(out, t)
	}
	return out, nil
}
