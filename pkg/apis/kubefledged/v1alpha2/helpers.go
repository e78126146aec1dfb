package v1alpha2

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// LabelSet returns the entry's node selector as a label set; empty selects every node.
func (e *CacheSpecImages) LabelSet() labels.Set {
	set := make(labels.Set, len(e.NodeSelector))
	for k, v := range e.NodeSelector {
		set[k] = string(v)
	}
	return set
}

// Selector returns the entry's node selector.
func (e *CacheSpecImages) Selector() labels.Selector {
	return labels.SelectorFromSet(e.LabelSet())
}

// PodImagePullSecrets returns the cache's pull secrets in a Pod's form.
func (s *ImageCacheSpec) PodImagePullSecrets() []corev1.LocalObjectReference {
	if len(s.ImagePullSecrets) == 0 {
		return nil
	}
	out := make([]corev1.LocalObjectReference, 0, len(s.ImagePullSecrets))
	for _, sec := range s.ImagePullSecrets {
		out = append(out, corev1.LocalObjectReference{Name: sec.Name})
	}
	return out
}
