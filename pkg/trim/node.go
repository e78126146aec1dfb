package trim

import (
	"strings"

	corev1 "k8s.io/api/core/v1"

	"kubefledged.io/kube-fledged/pkg/images"
)

// presentPrefix marks the single name under which Node keeps a node's
// images in compact form. It cannot start an image reference.
const presentPrefix = "#kube-fledged-present:"

// namesCut is the second name of the compact entry of a node whose list
// may leave names out: the kubelet lists at most maxNamesPerImage names of
// an image (its MaxNamesPerImageInNodeStatus), so an image listed with that
// many may have more, among them the one looked for.
const (
	namesCut         = "#kube-fledged-names-cut"
	maxNamesPerImage = 5
)

// Node returns what the controller reads of a Node, for the informer's
// cache: its name, UID, creation and deletion time, labels, taints, whether
// it is cordoned, the Ready
// condition (type and status), the runtime version (for purge), the kubelet's
// version (whether it may pull a present image again), and the images it
// reports as a compact set of hashes of their normalised names
// (images.Present) with how many images the list held (ListedImages). A node whose kubelet reports 50 images, each by tag and
// by digest, is 17 KB as JSON or more and some 21 KB in memory; trimmed, it
// is about 3 KB (BenchmarkCachedObjectSize). Reading the images back is
// NodeImages.
func Node(n *corev1.Node) *corev1.Node {
	out := &corev1.Node{
		ObjectMeta: identity(&n.ObjectMeta),
		Spec:       corev1.NodeSpec{Taints: n.Spec.Taints, Unschedulable: n.Spec.Unschedulable},
		Status: corev1.NodeStatus{
			NodeInfo: corev1.NodeSystemInfo{ContainerRuntimeVersion: n.Status.NodeInfo.ContainerRuntimeVersion,
				KubeletVersion: n.Status.NodeInfo.KubeletVersion},
		},
	}
	out.Labels = n.Labels
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			out.Status.Conditions = []corev1.NodeCondition{{Type: c.Type, Status: c.Status}}
			break
		}
	}
	if len(n.Status.Images) > 0 {
		if _, compact := compactImages(n); compact {
			out.Status.Images = n.Status.Images
		} else {
			// The compact entry's size is the number of images listed.
			names := []string{presentPrefix + string(presentOfList(n.Status.Images))}
			if namesMayBeCut(n.Status.Images) {
				names = append(names, namesCut)
			}
			out.Status.Images = []corev1.ContainerImage{{Names: names, SizeBytes: int64(len(n.Status.Images))}}
		}
	}
	return out
}

// NodeImages returns the set of normalised images a node reports, from the
// compact form Node keeps, or from the full list of a node that was not
// trimmed.
func NodeImages(n *corev1.Node) images.Present {
	if p, ok := compactImages(n); ok {
		return p
	}
	return presentOfList(n.Status.Images)
}

// ListedImages returns how many images the node's status lists, from the
// compact form Node keeps, or from the full list of a node that was not
// trimmed. The kubelet lists its largest images only, up to its
// nodeStatusMaxImages (50 by default).
func ListedImages(n *corev1.Node) int {
	if _, ok := compactImages(n); ok {
		return int(n.Status.Images[0].SizeBytes)
	}
	return len(n.Status.Images)
}

// NamesCut says whether the node's list may leave out names of its images
// (an image listed with as many names as the kubelet lists): then a name's
// absence from it proves nothing.
func NamesCut(n *corev1.Node) bool {
	if _, ok := compactImages(n); ok {
		return len(n.Status.Images[0].Names) > 1 && n.Status.Images[0].Names[1] == namesCut
	}
	return namesMayBeCut(n.Status.Images)
}

func namesMayBeCut(list []corev1.ContainerImage) bool {
	for _, ci := range list {
		if len(ci.Names) >= maxNamesPerImage {
			return true
		}
	}
	return false
}

func compactImages(n *corev1.Node) (images.Present, bool) {
	if len(n.Status.Images) != 1 || len(n.Status.Images[0].Names) == 0 || len(n.Status.Images[0].Names) > 2 {
		return "", false
	}
	p, ok := strings.CutPrefix(n.Status.Images[0].Names[0], presentPrefix)
	return images.Present(p), ok
}

func presentOfList(list []corev1.ContainerImage) images.Present {
	var names []string
	for _, ci := range list {
		names = append(names, ci.Names...)
	}
	return images.NewPresent(names)
}
