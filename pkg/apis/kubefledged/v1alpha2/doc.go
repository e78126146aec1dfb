// Package v1alpha2 is the kubefledged.io/v1alpha2 API: the ImageCache
// resource, and the ImageCacheSlices that hold the ledger of a large one.
//
// +k8s:deepcopy-gen=package
// +groupName=kubefledged.io
// +kubebuilder:object:generate=false
package v1alpha2
