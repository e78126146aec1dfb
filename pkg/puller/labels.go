// Package puller builds the per-node image-pull Jobs and reads their outcome
// from Job and Pod status.
package puller

// Labels and annotations on the Jobs (and their pods) the controller creates.
const (
	// LabelManagedBy marks every object the controller creates.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "kube-fledged"
	// LabelComponent says what a Job does: image-pull (or image-delete).
	LabelComponent = "app.kubernetes.io/component"
	// ComponentPull is the LabelComponent value of pull Jobs.
	ComponentPull = "image-pull"
	// LabelCacheUID holds the UID of the owning ImageCache.
	LabelCacheUID = "kubefledged.io/imagecache-uid"
	// LabelEpoch holds the ledger epoch (Unix seconds) the Job was made for.
	LabelEpoch = "kubefledged.io/epoch"

	// AnnotationCache holds the owning ImageCache's name (names may be longer
	// than a label value allows).
	AnnotationCache = "kubefledged.io/imagecache"
	// AnnotationCacheNamespace holds the owning ImageCache's namespace, on
	// the delete Jobs, which run in the controller's namespace.
	AnnotationCacheNamespace = "kubefledged.io/imagecache-namespace"
	// AnnotationNode holds the name of the node the Job is pinned to.
	AnnotationNode = "kubefledged.io/node"
	// AnnotationImages holds the Job's images, a JSON list in container order.
	AnnotationImages = "kubefledged.io/images"
	// AnnotationResults holds the per-image failures the controller recorded
	// when it ended the Job itself (JSON map image -> reason and message).
	AnnotationResults = "kubefledged.io/results"
	// AnnotationEndedAt holds when the controller ended the Job (RFC 3339):
	// a retry of its failed pulls waits from then (EndedAt).
	AnnotationEndedAt = "kubefledged.io/ended-at"
	// AnnotationAttempt is the try a pin or unpin Job is, after the
	// first (PinBatch.Attempt).
	AnnotationAttempt = "kubefledged.io/attempt"

	// AnnotationOwnership, on a pull Job, says whether the kubelet's Pulling
	// event for one of its containers proves that the pull brought the
	// image onto the node (OwnershipPulling), or proves nothing
	// (OwnershipNone: the kubelet may have pulled an image that was there,
	// to check the pod's credentials). A Job without it proves nothing.
	AnnotationOwnership = "kubefledged.io/ownership"
	// AnnotationPullDeadlines, on a pull Job, maps (JSON) each of its
	// images whose pull deadline is its cacheSpec entry's to that deadline
	// (a Go duration); the others have --image-pull-deadline-duration.
	AnnotationPullDeadlines = "kubefledged.io/pull-deadlines"
	// AnnotationPulledAnyway, on a pull Job, lists (JSON) the images it
	// pulls with pull policy Always whose kubelet Pulling event proves
	// nothing: the node listed them when the Job was made, or does not list
	// every image it has.
	AnnotationPulledAnyway = "kubefledged.io/pulled-anyway"
	// AnnotationReportDigests, on the pod of a pull Job with images pulled
	// Always, asks the informer's cache to keep the digests its containers
	// ran once it Succeeded (trim), so that a moved tag is reported.
	AnnotationReportDigests = "kubefledged.io/report-digests"
	// OwnershipPulling and OwnershipNone are the values of AnnotationOwnership.
	OwnershipPulling = "pulling"
	OwnershipNone    = "none"

	// HostnameLabel is the well-known node label Jobs are pinned by.
	HostnameLabel = "kubernetes.io/hostname"
)
