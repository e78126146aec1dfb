package status

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/message"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// An image pulled Always (by tag) is brought up to date on every
// operation: status.digests records, per such image, the digest its tag
// resolved to (the image ID the node's runtime gave its container), the
// digest of when the operation started, and the nodes whose pull got
// another one (the tag moved). A pull is counted in the pass that settles
// it, whose status write records it once.
const (
	// maxDigests is the most images status.digests lists, and
	// maxMovedNodes the most nodes it names per image.
	maxDigests    = 100
	maxMovedNodes = 10
)

// StartDigests begins an operation's record of digests: each digest is
// the one of before, and none has moved yet.
func StartDigests(st *v1alpha2.ImageCacheStatus) {
	for img, d := range st.Digests {
		st.Digests[img] = v1alpha2.ImageDigest{Digest: d.Digest, Previous: d.Digest}
	}
}

// ContainerDigest is the digest ("sha256:...") the i-th container of a
// pull pod ran, from its image ID ("repo@sha256:..."), or "".
func ContainerDigest(pod *corev1.Pod, i int) string {
	if pod == nil {
		return ""
	}
	name := puller.ContainerName(i)
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name != name {
			continue
		}
		id := cs.ImageID
		if at := strings.LastIndex(id, "@"); at >= 0 {
			id = id[at+1:]
		}
		if strings.HasPrefix(id, "sha256:") || strings.HasPrefix(id, "sha512:") {
			return id
		}
	}
	return ""
}

// Moved is a pull that found an image's tag moved.
type Moved struct {
	image, node, from, to string
}

// RecordDigest records in the status the digest a pull of an image (as the
// spec spells it) got on a node, and returns the move when the tag moved.
func RecordDigest(st *v1alpha2.ImageCacheStatus, image, node, digest string) *Moved {
	if digest == "" {
		return nil
	}
	d, ok := st.Digests[image]
	if !ok && len(st.Digests) >= maxDigests {
		return nil
	}
	if st.Digests == nil {
		st.Digests = map[string]v1alpha2.ImageDigest{}
	}
	d.Digest = digest
	var moved *Moved
	if d.Previous != "" && digest != d.Previous {
		d.Moved++
		if len(d.Nodes) < maxMovedNodes {
			d.Nodes = append(append([]string(nil), d.Nodes...), node)
		}
		moved = &Moved{image: image, node: node, from: d.Previous, to: digest}
	}
	st.Digests[image] = d
	return moved
}

// pruneDigests drops from the status the images the spec no longer pulls
// Always.
func pruneDigests(st *v1alpha2.ImageCacheStatus, p *plan.Plan) {
	keep := map[string]bool{}
	for _, w := range p.Nodes {
		for _, wi := range w.Images {
			if wi.Always {
				keep[wi.Image] = true
			}
		}
	}
	for img := range st.Digests {
		if !keep[img] {
			delete(st.Digests, img)
		}
	}
	if len(st.Digests) == 0 {
		st.Digests = nil
	}
}

// movedCount sums the nodes whose pull found a tag moved.
func movedCount(st *v1alpha2.ImageCacheStatus) int {
	n := 0
	for _, d := range st.Digests {
		n += int(d.Moved)
	}
	return n
}

// MovedEvents says, one event per image, which tags the pass found moved.
func MovedEvents(recorder record.EventRecorder, ic *v1alpha2.ImageCache, moves []Moved) {
	byImage := map[string][]Moved{}
	for _, m := range moves {
		byImage[m.image] = append(byImage[m.image], m)
	}
	for _, img := range sortedKeys(byImage) {
		ms := byImage[img]
		nodes := make([]string, len(ms))
		for i, m := range ms {
			nodes[i] = m.node
		}
		sort.Strings(nodes)
		last := ms[len(ms)-1]
		recorder.Eventf(ic, corev1.EventTypeNormal, reasons.ImageMoved, "%s moved to %s (was %s) on %d %s: %s",
			img, last.to, last.from, len(nodes), message.Plural(len(nodes), "node", "nodes"), message.ListSome(nodes, 3))
	}
}
