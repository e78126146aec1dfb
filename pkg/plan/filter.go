package plan

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// networkNotReadyTaints are the taints of a node that is Ready before its
// pod network is: a pod's sandbox cannot be made there yet.
var networkNotReadyTaints = []string{
	"node.kubernetes.io/network-unavailable",
	"node.cilium.io/agent-not-ready",
	"node.cloudprovider.kubernetes.io/uninitialized",
}

// NodeFilter says which nodes the pull pods can run on, from the
// controller's flags: the architectures the helper image has, and the taints
// the pods tolerate.
type NodeFilter struct {
	// Architectures are the kubernetes.io/arch values the helper image
	// has; empty: any.
	Architectures []string
	// Tolerations are the pull pods' (puller.Config.Tolerations).
	Tolerations []corev1.Toleration
}

// SkipReason says why a node cannot take a pull, or "" if it can. A node
// whose operating system or architecture the helper image lacks never can
// (NeverPulls); the others can once the reason goes: a node that is not
// Ready, cordoned, whose pod network is not ready, or that has a NoSchedule
// or NoExecute taint the pull pods do not tolerate.
func (f NodeFilter) SkipReason(n *corev1.Node) string {
	if n.DeletionTimestamp != nil {
		return reasons.NodeDeleting
	}
	if n.Labels[puller.HostnameLabel] == "" {
		return reasons.NoHostnameLabel
	}
	if os, ok := n.Labels[corev1.LabelOSStable]; ok && os != "linux" {
		return reasons.UnsupportedOS
	}
	if arch, ok := n.Labels[corev1.LabelArchStable]; ok && len(f.Architectures) > 0 && !slices.Contains(f.Architectures, arch) {
		return reasons.UnsupportedArch
	}
	if !nodeReady(n) {
		return reasons.NodeNotReady
	}
	if n.Spec.Unschedulable {
		return reasons.NodeUnschedulable
	}
	for i := range n.Spec.Taints {
		t := &n.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		switch {
		case t.Key == corev1.TaintNodeUnschedulable:
			return reasons.NodeUnschedulable
		case slices.Contains(networkNotReadyTaints, t.Key):
			return reasons.NetworkNotReady
		case !tolerated(f.Tolerations, t):
			return reasons.NodeTainted
		}
	}
	return ""
}

// NeverPulls says whether a skip reason is the node's platform, which does
// not go by itself.
func NeverPulls(reason string) bool {
	return reason == reasons.UnsupportedOS || reason == reasons.UnsupportedArch
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func tolerated(tolerations []corev1.Toleration, t *corev1.Taint) bool {
	for i := range tolerations {
		if tolerations[i].ToleratesTaint(klog.Background(), t, false) {
			return true
		}
	}
	return false
}

// skipPhrases say, in a status message, why nodes were skipped.
var skipPhrases = map[string]string{
	reasons.NodeNotReady:      "not ready",
	reasons.PurgeEnded:        "not ready",
	reasons.NodeDeleting:      "being deleted",
	reasons.NoHostnameLabel:   "without a hostname label",
	reasons.UnsupportedOS:     "not Linux",
	reasons.UnsupportedArch:   "of an architecture the helper image lacks",
	reasons.NodeUnschedulable: "cordoned",
	reasons.NetworkNotReady:   "whose network is not ready",
	reasons.NodeTainted:       "with a taint the pull pods do not tolerate",
}

// SkipPhrase says, in a status message, why nodes were skipped.
func SkipPhrase(reason string) string { return skipPhrases[reason] }
