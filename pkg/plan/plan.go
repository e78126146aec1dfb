// Package plan is what an ImageCache wants: the (node, image) pairs of its
// spec on the nodes of now (Compute), which nodes can take a pull and why
// the others cannot (NodeFilter), what it wants on each node for the tools
// that report it node by node (SelectNodes), whether its pulls hold a
// node's startup taint (HoldingPulls), whether it is more than one object
// can record (TooLarge), and how long its pulls have left (TimeLeft). It
// reads and decides; it writes nothing. The ImageCache controller, the
// node-warming controller and kubectl fledged share it.
//
// The files: plan.go, the pairs; filter.go, the nodes; select.go, one
// node's view; size.go, the too-large test; timeleft.go, the estimate.
package plan

import (
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// Image is an image as the spec spells it, and its normalised key;
// always says it is pulled even where the node has it (pullAlways), and
// deadline is its entry's pull deadline (zero: the controller's).
type Image struct {
	Image    string
	Key      string
	Always   bool
	Deadline time.Duration
}

// Node is what one node should have.
type Node struct {
	Node     *corev1.Node
	Hostname string
	// Skip is why the node cannot take a pull now ("" when it can).
	Skip   string
	Images []Image // sorted by key, no duplicates
}

// Plan is the desired set of (node, image) pulls of one cache.
type Plan struct {
	Nodes map[string]*Node
	// Invalid maps an image the normaliser refuses to its error, and
	// invalidNodes lists, per such image, the nodes it was meant for.
	Invalid      map[string]string
	InvalidNodes map[string][]string
	// Display maps a normalised key to the spelling shown in status.
	Display map[string]string
	// SpecKeys holds every normalised image of the spec.
	SpecKeys map[string]bool
	// Pin is the spec's pin: the ledger records pins too.
	Pin bool
}

// Wants says whether the plan wants an image (normalised) on a node.
func (p *Plan) Wants(node, key string) bool { return p.Wanted(node, key) != nil }

// Always says whether the plan pulls an image (normalised) Always on a node.
func (p *Plan) Always(node, key string) bool {
	wi := p.Wanted(node, key)
	return wi != nil && wi.Always
}

// Node is what the plan wants on a node, or nil; a nil plan wants nothing.
func (p *Plan) Node(name string) *Node {
	if p == nil {
		return nil
	}
	return p.Nodes[name]
}

// Wanted is an image (normalised) the plan wants on a node, or nil.
func (p *Plan) Wanted(node, key string) *Image {
	w := p.Node(node)
	if w == nil {
		return nil
	}
	i := sort.Search(len(w.Images), func(i int) bool { return w.Images[i].Key >= key })
	if i < len(w.Images) && w.Images[i].Key == key {
		return &w.Images[i]
	}
	return nil
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

// Compute works out the desired pulls from the spec and the nodes, and
// why the nodes that cannot take a pull cannot (filter). alwaysByDefault is
// the controller's pull policy for entries that set none (pullAlways); an
// image two entries want on a node is pulled Always if either says so.
func Compute(ic *v1alpha2.ImageCache, nodes []*corev1.Node, filter NodeFilter, alwaysByDefault bool) *Plan {
	p := &Plan{
		Nodes:        map[string]*Node{},
		Invalid:      map[string]string{},
		InvalidNodes: map[string][]string{},
		Display:      map[string]string{},
		SpecKeys:     map[string]bool{},
		Pin:          ic.Spec.Pin,
	}
	// seen holds the images of a node that more than one entry selects, to
	// want each once; a node that one entry selects needs none (its entry's
	// images are told apart once), and most nodes are such.
	seen := map[string]map[string]bool{}
	for ei := range ic.Spec.CacheSpec {
		entry := &ic.Spec.CacheSpec[ei]
		sel := entry.Selector()
		var valid []Image
		var invalid []string
		inEntry := map[string]bool{}
		for _, img := range entry.Images {
			key, err := images.Normalize(img)
			if err != nil {
				p.Invalid[img] = err.Error()
				invalid = append(invalid, img)
				continue
			}
			if _, ok := p.Display[key]; !ok {
				p.Display[key] = img
			}
			p.SpecKeys[key] = true
			if !inEntry[key] {
				inEntry[key] = true
				wi := Image{Image: p.Display[key], Key: key, Always: pullAlways(entry, key, alwaysByDefault)}
				if entry.PullDeadline != nil {
					wi.Deadline = entry.PullDeadline.Duration
				}
				valid = append(valid, wi)
			}
		}
		for _, n := range nodes {
			if !sel.Matches(labels.Set(n.Labels)) {
				continue
			}
			w := p.Nodes[n.Name]
			if w == nil {
				w = &Node{Node: n, Hostname: n.Labels[puller.HostnameLabel], Skip: filter.SkipReason(n),
					Images: append([]Image(nil), valid...)}
				p.Nodes[n.Name] = w
			} else {
				have := seen[n.Name]
				if have == nil {
					have = make(map[string]bool, len(w.Images)+len(valid))
					for _, wi := range w.Images {
						have[wi.Key] = true
					}
					seen[n.Name] = have
				}
				for _, wi := range valid {
					if !have[wi.Key] {
						have[wi.Key] = true
						w.Images = append(w.Images, wi)
					} else if wi.Always || wi.Deadline > 0 {
						for j := range w.Images {
							if w.Images[j].Key == wi.Key {
								w.Images[j].Always = w.Images[j].Always || wi.Always
								w.Images[j].Deadline = max(w.Images[j].Deadline, wi.Deadline)
							}
						}
					}
				}
			}
			for _, img := range invalid {
				p.InvalidNodes[img] = appendUnique(p.InvalidNodes[img], n.Name)
			}
		}
	}
	for _, w := range p.Nodes {
		sort.Slice(w.Images, func(i, j int) bool { return w.Images[i].Key < w.Images[j].Key })
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
