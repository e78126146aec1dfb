package imagecache

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"kubefledged.io/kube-fledged/pkg/puller"
)

// Why a node cannot take a pull: for now (it is pulled onto once the reason
// goes), or, for its platform, at all.
const (
	reasonNodeNotReady      = "NodeNotReady"            // skipped: the node's Ready condition is not True
	reasonNodeDeleting      = "NodeDeleting"            // skipped: the node is being deleted
	reasonNoHostnameLabel   = "NoHostnameLabel"         // skipped: the node has no kubernetes.io/hostname label to pin a Job by
	reasonUnsupportedOS     = "UnsupportedOS"           // skipped, for good: the node is not Linux
	reasonUnsupportedArch   = "UnsupportedArchitecture" // skipped, for good: the helper image has no variant for the node's architecture
	reasonNodeUnschedulable = "NodeUnschedulable"       // skipped: the node is cordoned
	reasonNetworkNotReady   = "NetworkNotReady"         // skipped: the node's pod network is not ready
	reasonNodeTainted       = "NodeTainted"             // skipped: a NoSchedule or NoExecute taint the pull pods do not tolerate
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
		return reasonNodeDeleting
	}
	if n.Labels[puller.HostnameLabel] == "" {
		return reasonNoHostnameLabel
	}
	if os, ok := n.Labels[corev1.LabelOSStable]; ok && os != "linux" {
		return reasonUnsupportedOS
	}
	if arch, ok := n.Labels[corev1.LabelArchStable]; ok && len(f.Architectures) > 0 && !slices.Contains(f.Architectures, arch) {
		return reasonUnsupportedArch
	}
	if !nodeReady(n) {
		return reasonNodeNotReady
	}
	if n.Spec.Unschedulable {
		return reasonNodeUnschedulable
	}
	for i := range n.Spec.Taints {
		t := &n.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		switch {
		case t.Key == corev1.TaintNodeUnschedulable:
			return reasonNodeUnschedulable
		case slices.Contains(networkNotReadyTaints, t.Key):
			return reasonNetworkNotReady
		case !tolerated(f.Tolerations, t):
			return reasonNodeTainted
		}
	}
	return ""
}

// NeverPulls says whether a skip reason is the node's platform, which does
// not go by itself.
func NeverPulls(reason string) bool {
	return reason == reasonUnsupportedOS || reason == reasonUnsupportedArch
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
	reasonNodeNotReady:      "not ready",
	reasonPurgeEnded:        "not ready",
	reasonNodeDeleting:      "being deleted",
	reasonNoHostnameLabel:   "without a hostname label",
	reasonUnsupportedOS:     "not Linux",
	reasonUnsupportedArch:   "of an architecture the helper image lacks",
	reasonNodeUnschedulable: "cordoned",
	reasonNetworkNotReady:   "whose network is not ready",
	reasonNodeTainted:       "with a taint the pull pods do not tolerate",
}
