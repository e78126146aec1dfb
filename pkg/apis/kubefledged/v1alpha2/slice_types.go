package v1alpha2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The labels every ImageCacheSlice carries, to find a cache's slices.
const (
	// LabelSliceCache holds the name of the slice's ImageCache.
	LabelSliceCache = "kubefledged.io/imagecache"
	// LabelSliceCacheUID holds the UID of the slice's ImageCache.
	LabelSliceCacheUID = "kubefledged.io/imagecache-uid"
)

// MaxSliceNodes is the most nodes one ImageCacheSlice holds.
const MaxSliceNodes = 1000

// ImageCacheSlice holds the part of an ImageCache's ledger that concerns a
// bounded set of nodes: for each of them, the state of each image's pull in
// the cache's latest operation, the images the cache's own pulls brought
// onto it, and its pins. A cache over many nodes keeps its ledger in slices,
// as a Service keeps its endpoints in EndpointSlices: each is written only
// when its own nodes change. The controller writes them, in the cache's
// namespace, owned by the cache (they go with it) and labelled with its name
// and UID; nobody else should.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=ics,categories=kubefledged
// +kubebuilder:printcolumn:name="Cache",type=string,JSONPath=`.metadata.labels['kubefledged\.io/imagecache']`
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.nodeCount`,description="Nodes whose ledger entries the slice holds"
// +kubebuilder:printcolumn:name="Epoch",type=integer,JSONPath=`.ledger.epoch`,priority=1,description="The operation its states belong to (its start, Unix seconds)"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ImageCacheSlice struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// NodeCount is the number of nodes in ledger.nodes and ledger.pins
	// together.
	// +optional
	NodeCount int32 `json:"nodeCount,omitempty"`
	// Ledger is the slice's part of the cache's ledger, in the encoding of
	// status.ledger: its nodes' entries and pins, indexing its own table of
	// images, and the epoch of the operation its states belong to (states
	// of another epoch than the cache's are not the operation's).
	Ledger PullLedger `json:"ledger"`
}

// ImageCacheSliceList is a list of ImageCacheSlices.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type ImageCacheSliceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []ImageCacheSlice `json:"items"`
}
