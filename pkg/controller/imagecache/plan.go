package imagecache

import (
	"context"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/message"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// Reasons of our own for an image that cannot be pulled at all, and events
// (nodes.go has those of a node that cannot take a pull).
const (
	reasonPurgeEnded       = "PurgeEnded"       // a node whose pairs were left unsettled when the purge ended
	reasonInvalidImageName = "InvalidImageName" // status.failures: the image reference does not parse
	reasonUnknownRuntime   = "UnknownRuntime"   // status.failures: no CRI socket is known for the node's runtime, so nothing can be removed there
	reasonJobRejected      = "JobRejected"      // status.failures and Event: the API server refused the pull Job (a quota, a webhook, a policy)
	reasonNodesReplaced    = "NodesReplaced"    // Event: nodes re-created under the same name are warmed again
	reasonStatusTrimmed    = "StatusTrimmed"    // Event: the status was cut to fit in one object
	reasonTooLarge         = "TooLarge"         // Ready, Stalled and Event: the cache is too large to record in one object, and gets no Jobs
	// nodeImagesLag (seconds) is how long a node may go on reporting an
	// image after its removal: the kubelet re-lists images every ~30s and
	// reports status every ~10s.
	nodeImagesLag = 120
	// maxImagesPerDeleteJob bounds one delete Job's command line.
	maxImagesPerDeleteJob = 100
)

// wantedImage is an image as the spec spells it, and its normalised key;
// always says it is pulled even where the node has it (pullAlways), and
// deadline is its entry's pull deadline (zero: the controller's).
type wantedImage struct {
	image    string
	key      string
	always   bool
	deadline time.Duration
}

// nodeWant is what one node should have.
type nodeWant struct {
	node     *corev1.Node
	hostname string
	// skip is why the node cannot take a pull now ("" when it can).
	skip   string
	images []wantedImage // sorted by key, no duplicates
}

// plan is the desired set of (node, image) pulls of one cache.
type plan struct {
	nodes map[string]*nodeWant
	// invalid maps an image the normaliser refuses to its error, and
	// invalidNodes lists, per such image, the nodes it was meant for.
	invalid      map[string]string
	invalidNodes map[string][]string
	// display maps a normalised key to the spelling shown in status.
	display map[string]string
	// specKeys holds every normalised image of the spec.
	specKeys map[string]bool
	// pin is the spec's pin: the ledger records pins too.
	pin bool
}

func (p *plan) wants(node, key string) bool { return p.wanted(node, key) != nil }

// always says whether the plan pulls an image (normalised) Always on a node.
func (p *plan) always(node, key string) bool {
	wi := p.wanted(node, key)
	return wi != nil && wi.always
}

// wanted is an image (normalised) the plan wants on a node, or nil.
func (p *plan) wanted(node, key string) *wantedImage {
	w := p.nodes[node]
	if w == nil {
		return nil
	}
	i := sort.Search(len(w.images), func(i int) bool { return w.images[i].key >= key })
	if i < len(w.images) && w.images[i].key == key {
		return &w.images[i]
	}
	return nil
}

// makePlan works out what this pass works on: the desired pulls of the spec
// on the nodes of now, the operation under way, the ledger trimmed to the
// pairs the operation still cares about, and the failures that still hold.
func (c *Controller) makePlan(ctx context.Context, s *syncCtx) error {
	nodes, byName, err := c.listNodes()
	if err != nil {
		return err
	}
	s.plan = computePlan(s.ic, nodes, c.filter, c.cfg.Puller.PullPolicy == corev1.PullAlways)
	s.nodes = byName
	s.op = c.operationFor(s)
	if replaced := s.led.ForgetReplaced(s.nodes); len(replaced) > 0 {
		klog.FromContext(ctx).Info("Nodes re-created under the same name: warming them again", "nodes", replaced)
		c.recorder.Eventf(s.ic, corev1.EventTypeNormal, reasonNodesReplaced,
			"%d %s re-created under the same name, to be warmed again: %s", len(replaced),
			message.Plural(len(replaced), "node was", "nodes were"), message.ListSome(replaced, 3))
	}
	s.failures = newFailureSet(s.st.Failures, s.plan, s.led)
	s.unpinned = newUnpinnedSet(s.st.Unpinned, s.led)
	return nil
}

// listNodes lists the cluster's nodes from the informer, and by name.
func (c *Controller) listNodes() ([]*corev1.Node, map[string]*corev1.Node, error) {
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return nil, nil, err
	}
	byName := make(map[string]*corev1.Node, len(nodes))
	for _, n := range nodes {
		byName[n.Name] = n
	}
	return nodes, byName, nil
}

// pullAlways says whether an image (normalised) of a cacheSpec entry is
// pulled onto a node that has it: never by digest; else as the entry's
// pullPolicy says, or, without one, as a Pod's container would be, Always
// for ":latest" (and untagged) and the controller's policy (alwaysByDefault)
// for other tags.
func pullAlways(entry *v1alpha2.CacheSpecImages, key string, alwaysByDefault bool) bool {
	switch {
	case images.ByDigest(key):
		return false
	case entry.PullPolicy != "":
		return entry.PullPolicy == v1alpha2.PullAlways
	default:
		return alwaysByDefault || images.Latest(key)
	}
}

// computePlan works out the desired pulls from the spec and the nodes, and
// why the nodes that cannot take a pull cannot (filter). alwaysByDefault is
// the controller's pull policy for entries that set none (pullAlways); an
// image two entries want on a node is pulled Always if either says so.
func computePlan(ic *v1alpha2.ImageCache, nodes []*corev1.Node, filter NodeFilter, alwaysByDefault bool) *plan {
	p := &plan{
		nodes:        map[string]*nodeWant{},
		invalid:      map[string]string{},
		invalidNodes: map[string][]string{},
		display:      map[string]string{},
		specKeys:     map[string]bool{},
		pin:          ic.Spec.Pin,
	}
	// seen holds the images of a node that more than one entry selects, to
	// want each once; a node that one entry selects needs none (its entry's
	// images are told apart once), and most nodes are such.
	seen := map[string]map[string]bool{}
	for ei := range ic.Spec.CacheSpec {
		entry := &ic.Spec.CacheSpec[ei]
		sel := entry.Selector()
		var valid []wantedImage
		var invalid []string
		inEntry := map[string]bool{}
		for _, img := range entry.Images {
			key, err := images.Normalize(img)
			if err != nil {
				p.invalid[img] = err.Error()
				invalid = append(invalid, img)
				continue
			}
			if _, ok := p.display[key]; !ok {
				p.display[key] = img
			}
			p.specKeys[key] = true
			if !inEntry[key] {
				inEntry[key] = true
				wi := wantedImage{image: p.display[key], key: key, always: pullAlways(entry, key, alwaysByDefault)}
				if entry.PullDeadline != nil {
					wi.deadline = entry.PullDeadline.Duration
				}
				valid = append(valid, wi)
			}
		}
		for _, n := range nodes {
			if !sel.Matches(labels.Set(n.Labels)) {
				continue
			}
			w := p.nodes[n.Name]
			if w == nil {
				w = &nodeWant{node: n, hostname: n.Labels[puller.HostnameLabel], skip: filter.SkipReason(n),
					images: append([]wantedImage(nil), valid...)}
				p.nodes[n.Name] = w
			} else {
				have := seen[n.Name]
				if have == nil {
					have = make(map[string]bool, len(w.images)+len(valid))
					for _, wi := range w.images {
						have[wi.key] = true
					}
					seen[n.Name] = have
				}
				for _, wi := range valid {
					if !have[wi.key] {
						have[wi.key] = true
						w.images = append(w.images, wi)
					} else if wi.always || wi.deadline > 0 {
						for j := range w.images {
							if w.images[j].key == wi.key {
								w.images[j].always = w.images[j].always || wi.always
								w.images[j].deadline = max(w.images[j].deadline, wi.deadline)
							}
						}
					}
				}
			}
			for _, img := range invalid {
				p.invalidNodes[img] = appendUnique(p.invalidNodes[img], n.Name)
			}
		}
	}
	for _, w := range p.nodes {
		sort.Slice(w.images, func(i, j int) bool { return w.images[i].key < w.images[j].key })
	}
	return p
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// Wanted is an image a cache wants on a node: as its spec spells it, and
// normalised.
type Wanted struct{ Image, Key string }

// WantedOn lists the images a cache wants on a node, each once, and counts
// the images of the entries that select the node that the normaliser
// refuses; matched says whether any entry selects a node that can ever take
// a pull (filter: not one whose platform the helper image lacks).
func WantedOn(ic *v1alpha2.ImageCache, n *corev1.Node, filter NodeFilter) (wanted []Wanted, invalid int, matched bool) {
	p := computePlan(ic, []*corev1.Node{n}, filter, false)
	w := p.nodes[n.Name]
	if w == nil || NeverPulls(w.skip) {
		return nil, 0, false
	}
	for _, wi := range w.images {
		wanted = append(wanted, Wanted{Image: wi.image, Key: wi.key})
	}
	return wanted, len(p.invalidNodes), true
}

// Selection is what a cache's entries want on one node.
type Selection struct {
	// Wanted are the valid images, each once, in the order of their keys.
	Wanted []Wanted
	// Invalid maps each image of the selecting entries that the normaliser
	// refuses to its error: it counts as failed there.
	Invalid map[string]string
	// Skip is why the node cannot take a pull now, or "" (SkipReason);
	// NeverPulls(Skip): a platform the pulls never run on.
	Skip string
}

// SelectNodes works out what a cache wants on each of some nodes, whatever
// their state, for tools that report it node by node: a node no entry
// selects has no key.
func SelectNodes(ic *v1alpha2.ImageCache, nodes []*corev1.Node, filter NodeFilter) map[string]Selection {
	p := computePlan(ic, nodes, filter, false)
	out := make(map[string]Selection, len(p.nodes))
	for name, w := range p.nodes {
		sel := Selection{Skip: w.skip, Wanted: make([]Wanted, 0, len(w.images))}
		for _, wi := range w.images {
			sel.Wanted = append(sel.Wanted, Wanted{Image: wi.image, Key: wi.key})
		}
		out[name] = sel
	}
	for img, names := range p.invalidNodes {
		for _, name := range names {
			sel := out[name]
			if sel.Invalid == nil {
				sel.Invalid = map[string]string{}
			}
			sel.Invalid[img] = p.invalid[img]
			out[name] = sel
		}
	}
	return out
}
