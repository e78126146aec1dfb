package ops

import (
	"maps"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/images"
)

// otherCaches answers what the other ImageCaches want on a node, so that
// removing an image from this cache's nodes leaves what they want there. A
// purged cache, or one being purged, wants nothing. The caches are listed,
// and their images normalised, once, when first asked.
type otherCaches struct {
	c       *Ops
	self    *v1alpha2.ImageCache
	loaded  bool
	entries []otherEntry
}

// otherEntry is one cacheSpec entry of another cache: its selector and its
// images, normalised.
type otherEntry struct {
	cache string // namespace/name
	sel   labels.Selector
	keys  []string
}

func (c *Ops) otherCaches(ic *v1alpha2.ImageCache) *otherCaches {
	return &otherCaches{c: c, self: ic}
}

func (o *otherCaches) list() []otherEntry {
	if o.loaded {
		return o.entries
	}
	o.loaded = true
	all, err := o.c.icLister.List(labels.Everything())
	if err != nil {
		return nil
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Namespace+"/"+all[i].Name < all[j].Namespace+"/"+all[j].Name })
	for _, other := range all {
		if other.UID == o.self.UID || other.Status.Reason == v1alpha2.ImageCacheReasonPurge || other.DeletionTimestamp != nil {
			continue
		}
		for i := range other.Spec.CacheSpec {
			e := otherEntry{cache: other.Namespace + "/" + other.Name, sel: other.Spec.CacheSpec[i].Selector()}
			for _, img := range other.Spec.CacheSpec[i].Images {
				if k, err := images.Normalize(img); err == nil {
					e.keys = append(e.keys, k)
				}
			}
			o.entries = append(o.entries, e)
		}
	}
	return o.entries
}

// each calls fn with each other cache (namespace/name) and each image
// (normalised) it wants on a node, until fn returns false.
func (o *otherCaches) each(n *corev1.Node, fn func(cache, key string) bool) {
	for _, e := range o.list() {
		if !e.sel.Matches(labels.Set(n.Labels)) {
			continue
		}
		for _, k := range e.keys {
			if !fn(e.cache, k) {
				return
			}
		}
	}
}

// wants names (namespace/name) another cache that wants an image
// (normalised) on a node, or returns "".
func (o *otherCaches) wants(n *corev1.Node, key string) string {
	name := ""
	o.each(n, func(cache, k string) bool {
		if k == key {
			name = cache
		}
		return name == ""
	})
	return name
}

// on lists, in order, the images (normalised) the other caches want on a
// node: a delete Job keeps an image the runtime also knows under one of
// them (the runtime removes an image, not a name).
func (o *otherCaches) on(n *corev1.Node) []string {
	set := map[string]bool{}
	o.each(n, func(_, k string) bool { set[k] = true; return true })
	return sortedKeys(set)
}

// sortedKeys lists a map's keys in order.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
