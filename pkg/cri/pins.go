package cri

// The labels of a containerd image record that pins hold (fledged-cri pin
// sets them, pkg/pinner).
const (
	// LabelPinned is containerd's CRI pin: an image with a record so
	// labelled is reported pinned, and the kubelet does not collect it.
	LabelPinned = "io.cri-containerd.pinned"
	// PinnedValue is LabelPinned's value.
	PinnedValue = "pinned"
	// LabelPinnedByPrefix, followed by a cache's UID, records that the
	// cache pinned the image; its value is the cache's namespace/name.
	LabelPinnedByPrefix = "kubefledged.io/pinned-by."
	// LabelPinPredates marks an image that was pinned before any cache
	// pinned it: its pin stays when the last cache unpins it.
	LabelPinPredates = "kubefledged.io/pin-predates"
)
