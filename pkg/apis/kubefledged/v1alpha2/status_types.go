package v1alpha2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PullLedger records, per node, the state of each image's pull: done, found
// already present, or failed. It is written by the controller only.
type PullLedger struct {
	// Format is the version of the record: absent or 1 when the nodes'
	// entries are here, in status.ledger (releases before ImageCacheSlices);
	// 2 when they are in the cache's ImageCacheSlices, each slice's ledger
	// holding those of its nodes in the encoding described here, and
	// status.ledger only the epoch and the removal time. A controller that
	// changes the record writes a higher number, so that readers which do
	// not know it (an older controller after a downgrade, an older
	// kubectl-fledged) refuse the record rather than misread it.
	// +optional
	Format int32 `json:"format,omitempty"`
	// Epoch is the Unix time at which the record began: the start of the
	// latest operation.
	Epoch int64 `json:"epoch"`
	// Images is the table of normalised image references the node states index.
	// +optional
	// +listType=atomic
	Images []string `json:"images,omitempty"`
	// Nodes maps a node name to the states of the images on it: two bits per
	// image in the order of Images (0 unsettled, 1 pulled, 2 already present,
	// 3 failed), packed four to a byte, base64 encoded; then a "." and the
	// first 8 characters of the node's UID, so that a node re-created under
	// the same name is known as new and warmed again; then, if any, a "."
	// and a bit per image of Images, eight to a byte, base64 encoded, set
	// for the images this cache's own pull brought onto the node (the kubelet
	// pulled them, so they were not there before): the only ones this cache
	// may remove from it.
	// +optional
	Nodes map[string]string `json:"nodes,omitempty"`
	// Pins maps a node name to the cache's pins there: two bits per image
	// in the order of Images (0 none, 1 pinned, 2 refused, 3 unsure: a pin
	// that may be set, held until an unpin confirms it gone, and set again
	// where the cache still wants it), packed four to a byte, base64
	// encoded. A pin stays recorded until the cache takes it away, whatever
	// the spec says since.
	// +optional
	Pins map[string]string `json:"pins,omitempty"`
	// RemovedAt is the Unix time this cache last removed images from nodes.
	// For a while after it, the images a node reports may still list them,
	// so they are pulled rather than taken as already present.
	// +optional
	RemovedAt int64 `json:"removedAt,omitempty"`
}

// PullCounts counts (node, image) pulls. Desired is the sum of Succeeded,
// Failed, Pending and Skipped.
type PullCounts struct {
	// Desired is the number of (node, image) pairs wanted.
	Desired int32 `json:"desired"`
	// Succeeded is the number of pairs done: pulled, or already present.
	Succeeded int32 `json:"succeeded"`
	// AlreadyPresent is the part of Succeeded found on the node without a pull.
	// +optional
	AlreadyPresent int32 `json:"alreadyPresent,omitempty"`
	// Failed is the number of pairs whose pull failed.
	Failed int32 `json:"failed"`
	// Pending is the number of pairs not yet done.
	Pending int32 `json:"pending"`
	// Skipped is the number of pairs on nodes that cannot take a pull now
	// (not Ready, or being deleted); they are pulled when the node is Ready.
	Skipped int32 `json:"skipped"`
	// Pinned is the part of Succeeded that the cache pinned against the
	// kubelet's image garbage collection (spec.pin).
	// +optional
	Pinned int32 `json:"pinned,omitempty"`
}

// ImageDigest is the digest an image's tag resolved to, and whether it moved.
type ImageDigest struct {
	// Digest is the digest the latest pull of the tag got ("sha256:...").
	Digest string `json:"digest"`
	// Previous is the digest the tag had when the latest operation
	// started; empty before the first pull.
	// +optional
	Previous string `json:"previous,omitempty"`
	// Moved counts the nodes whose pull in the latest operation got a
	// digest other than Previous: the tag moved, and they have its new
	// image.
	// +optional
	Moved int32 `json:"moved,omitempty"`
	// Nodes names the first 10 of them.
	// +optional
	// +listType=atomic
	Nodes []string `json:"nodes,omitempty"`
}

// NodeReasonMessage is one node's entry in an image's list of failures
// (status.failures), or of pins refused (status.unpinned): the node, a
// short reason and the detail.
type NodeReasonMessage struct {
	// Node is the node's name.
	Node string `json:"node"`
	// Reason is a short CamelCase word, such as ErrImagePull,
	// DeadlineExceeded or PinBudgetExceeded.
	Reason string `json:"reason"`
	// Message is the detail, such as the kubelet's error.
	// +optional
	Message string `json:"message,omitempty"`
}

// NodeReasonMessageList is a list of per-node entries.
type NodeReasonMessageList []NodeReasonMessage

// KeptOnNodes lists the nodes where the latest purge left an image.
type KeptOnNodes []KeptOnNode

// KeptOnNode is a node where the latest purge left an image, and why.
type KeptOnNode struct {
	// Node is the node's name.
	Node string `json:"node"`
	// Reason is WantedByOtherCache (another ImageCache wants the image on
	// the node) or NotPulledByThisCache (this cache's own pull did not
	// bring it there, so it is not this cache's to remove).
	Reason string `json:"reason"`
	// Message says more, such as which caches want the image.
	// +optional
	Message string `json:"message,omitempty"`
}

// ImageCacheList is a list of ImageCaches.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type ImageCacheList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []ImageCache `json:"items"`
}
