package v1alpha2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Limits enforced by the CRD schema. They keep one object far below etcd's
// size limit and keep the API server's validation cost bounded.
const (
	// MaxCacheSpecEntries is the most cacheSpec entries one ImageCache may hold.
	MaxCacheSpecEntries = 64
	// MaxImagesPerEntry is the most images one cacheSpec entry may list.
	MaxImagesPerEntry = 512
	// MaxImageLength is the longest image reference accepted.
	MaxImageLength = 4096
	// MaxNodeSelectorLabels is the most labels one nodeSelector may hold.
	MaxNodeSelectorLabels = 32
	// MaxImagePullSecrets is the most imagePullSecrets one ImageCache may name.
	MaxImagePullSecrets = 16
	// MaxFailuresPerImage is the most per-node failures listed for one image in
	// status.failures; the rest are counted in status.omittedFailures.
	MaxFailuresPerImage = 100
	// MaxFailures is the most per-node failures listed in status.failures
	// for all images together, taken in turn from each image.
	MaxFailures = 500
)

// ImageCache asks for a set of container images to be pulled onto, and kept
// on, the nodes that match each entry's node selector.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=ic,categories=kubefledged
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`,description="The images are on their nodes (the Ready condition)"
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.status`
// +kubebuilder:printcolumn:name="Done",type=integer,JSONPath=`.status.pulls.succeeded`,description="Pulls done (pulled, or already present)"
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.pulls.desired`,description="Pulls wanted: (node, image) pairs"
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.pulls.failed`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.reason`,priority=1
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
type ImageCache struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec lists the images to cache and where.
	Spec ImageCacheSpec `json:"spec"`

	// Status is the outcome of the latest operation on this cache. Until
	// the controller first writes it, it reads observedGeneration 0, so
	// that tools which compare it with metadata.generation (kstatus, Flux,
	// Argo CD) see a cache not yet reconciled rather than one done.
	// +optional
	// +kubebuilder:default={observedGeneration: 0}
	Status ImageCacheStatus `json:"status,omitempty"`
}

// ImageCacheSpec lists the images to cache and the nodes to cache them on.
type ImageCacheSpec struct {
	// CacheSpec is one or more lists of images, each with the nodes it applies to.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	CacheSpec []CacheSpecImages `json:"cacheSpec"`

	// ImagePullSecrets are Secrets in the ImageCache's namespace used to pull
	// the images, as in a Pod's imagePullSecrets.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	ImagePullSecrets []ImagePullSecret `json:"imagePullSecrets,omitempty"`

	// Pin keeps the cache's images on its nodes against the kubelet's
	// image garbage collection, which otherwise removes the images no
	// running container uses first when the disk fills: once a node's
	// pulls settle, the controller pins them there (containerd 1.7 and
	// later; a node whose runtime cannot pin is reported in
	// status.unpinned, and its pulls still count), within the disk budget
	// of --pin-budget-percent of the node's image filesystem. Pinned
	// images stay while the node's disk fills: past the kubelet's
	// eviction threshold it evicts pods instead. The pins go when an image
	// leaves the spec, when pin is turned off, and when the cache is
	// purged or deleted; a pin that something else set (the sandbox
	// image, an operator's own) stays. Absent: false.
	// +optional
	Pin bool `json:"pin,omitempty"`
}

// CacheSpecImages is a list of images and the nodes to cache them on.
type CacheSpecImages struct {
	// Images are container image references, such as "nginx:1.27" or
	// "ghcr.io/org/app@sha256:...". Each appears at most once in an entry.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=512
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=4096
	// +kubebuilder:validation:items:Pattern=`^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127})?(?:@(?:sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128}))?$`
	// +listType=set
	Images []string `json:"images"`

	// NodeSelector selects the nodes to cache the images on, by label. Empty
	// or absent means every node.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$') && (!k.contains('/') || k.indexOf('/') <= 253))",message="nodeSelector keys must be valid label keys: an optional DNS subdomain prefix and '/', then a name of at most 63 characters (A-Z a-z 0-9 - _ .), alphanumeric at both ends"
	NodeSelector map[string]LabelValue `json:"nodeSelector,omitempty"`

	// PullPolicy says whether the entry's images are pulled onto a node
	// that already has them. Always: on every create and refresh, and onto
	// every node that joins, so that a tag that moved is brought up to date;
	// the kubelet fetches the manifest and only the layers it lacks.
	// IfNotPresent: an image the node reports is not pulled again. An image
	// by digest is never pulled again, whatever the policy. Absent: as a
	// Pod's containers, Always for an image tagged ":latest" or untagged,
	// else the controller's --image-pull-policy.
	// +optional
	PullPolicy ImagePullPolicy `json:"pullPolicy,omitempty"`

	// PullDeadline is how long each of the entry's images may take to pull
	// onto a node, from when the kubelet starts pulling it (its Pulling
	// event), before it counts as failed: a Go duration from 1s to 24h,
	// such as "45m" for a 20 GB image. Absent: the controller's
	// --image-pull-deadline-duration. An image two entries want on a node
	// gets the longer.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="pullDeadline must be from 1s to 24h"
	PullDeadline *metav1.Duration `json:"pullDeadline,omitempty"`
}

// ImagePullPolicy says when an entry's images are pulled onto a node that
// already has them.
// +kubebuilder:validation:Enum=Always;IfNotPresent
type ImagePullPolicy string

// The pull policies of a cacheSpec entry.
const (
	PullAlways       ImagePullPolicy = "Always"
	PullIfNotPresent ImagePullPolicy = "IfNotPresent"
)

// LabelValue is a label value a node selector matches.
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:Pattern=`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`
type LabelValue string

// ImagePullSecret names a Secret in the ImageCache's namespace that holds
// registry credentials, as a Pod's imagePullSecrets entries do.
type ImagePullSecret struct {
	// Name is the Secret's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// ImageCacheActionStatus is the state of the latest operation on an ImageCache.
// +kubebuilder:validation:Enum=Processing;Succeeded;Failed;Aborted;Unknown
type ImageCacheActionStatus string

// The states of an operation, as kube-fledged has always reported them.
const (
	// ImageCacheActionStatusProcessing: pulls (or removals) are under way.
	ImageCacheActionStatusProcessing ImageCacheActionStatus = "Processing"
	// ImageCacheActionStatusSucceeded: every wanted pull is done.
	ImageCacheActionStatusSucceeded ImageCacheActionStatus = "Succeeded"
	// ImageCacheActionStatusFailed: the operation finished, and some pulls failed.
	ImageCacheActionStatusFailed ImageCacheActionStatus = "Failed"
	// ImageCacheActionStatusAborted: upstream's, for an operation stopped
	// before it finished; accepted, never set by this controller.
	ImageCacheActionStatusAborted ImageCacheActionStatus = "Aborted"
	// ImageCacheActionStatusUnknown: upstream's, for an outcome that could not
	// be determined; accepted, never set by this controller.
	ImageCacheActionStatusUnknown ImageCacheActionStatus = "Unknown"
)

// The operations, reported in status.reason.
const (
	ImageCacheReasonCreate  = "ImageCacheCreate"
	ImageCacheReasonUpdate  = "ImageCacheUpdate"
	ImageCacheReasonRefresh = "ImageCacheRefresh"
	ImageCacheReasonPurge   = "ImageCachePurge"
)

// Condition types. Ready, Reconciling and Stalled follow kstatus
// (sigs.k8s.io/cli-utils), which Flux, kubectl's apply tooling and many
// pipelines read: Reconciling True is work under way, Stalled True is a
// cache that makes no progress until a person changes something.
const (
	// ConditionReady is True when the latest operation completed with every
	// wanted image on its nodes, and stays True while a refresh or the
	// warming of a joining node runs on a cache that was Ready for its
	// current generation.
	ConditionReady = "Ready"
	// ConditionReconciling is True while an operation is under way.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the latest operation failed, the cache
	// was refused as too large, or its images were purged: it pulls again
	// only when its spec changes or it is refreshed.
	ConditionStalled = "Stalled"
	// ConditionProgressing is True while an operation is under way (as
	// Reconciling; kept for the readers that know it).
	ConditionProgressing = "Progressing"
	// ConditionJobsRejected is True while pulls of the latest operation
	// stand failed because the API server refused their Jobs (a quota, an
	// admission webhook or policy); its message quotes the refusal.
	ConditionJobsRejected = "JobsRejected"
)

// Annotations a user sets to ask for an operation, whatever their value.
// The controller removes them when the operation is done. A refresh the
// annotation asks for sets its value to say so ("taken by the refresh
// started at ..."); set anew while that refresh runs, it asks for another.
const (
	AnnotationRefresh = "kubefledged.io/refresh-imagecache"
	AnnotationPurge   = "kubefledged.io/purge-imagecache"
)

// ImageCacheStatus is the outcome of the latest operation on an ImageCache.
type ImageCacheStatus struct {
	// Status is the state of the latest operation: Processing, then Succeeded
	// or Failed. Aborted and Unknown are upstream's values, accepted and never
	// set by this controller.
	// +optional
	Status ImageCacheActionStatus `json:"status,omitempty"`
	// Reason is the latest operation: ImageCacheCreate, ImageCacheUpdate,
	// ImageCacheRefresh or ImageCachePurge.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message says, for people, how the operation went, with counts.
	// +optional
	Message string `json:"message,omitempty"`
	// Failures maps an image to the nodes where it failed, with the reason
	// and message (the kubelet's own where there is one; a message over 512
	// bytes keeps its start and end). At most 100 nodes are listed per image
	// and 500 in all (fewer if the status would not fit in one object);
	// omittedFailures counts the rest.
	// +optional
	Failures map[string]NodeReasonMessageList `json:"failures,omitempty"`
	// OmittedFailures maps an image to the number of its failures left out
	// of failures to keep the object small.
	// +optional
	OmittedFailures map[string]int32 `json:"omittedFailures,omitempty"`
	// Kept maps an image to the nodes where the latest purge left it, and
	// why: WantedByOtherCache (another ImageCache wants it there, named in
	// the message) or NotPulledByThisCache (this cache's own pull did not
	// bring it there: it was there before, or that could not be shown). At
	// most 100 nodes are listed per image and 500 in all.
	// +optional
	Kept map[string]KeptOnNodes `json:"kept,omitempty"`
	// Unpinned maps an image of a pinning cache (spec.pin) to the nodes
	// where it is cached but could not be pinned, and why:
	// PinBudgetExceeded (pinning it would take the node's pinned images
	// past the budget; the message has the sizes), PinUnsupported (the
	// node's runtime cannot pin images) or PinFailed. At most 100 nodes
	// are listed per image and 500 in all. The pins are tried again in the
	// next operation (a refresh, an update).
	// +optional
	Unpinned map[string]NodeReasonMessageList `json:"unpinned,omitempty"`
	// StartTime is when the latest operation started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when the latest operation finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions are Ready, Reconciling, Stalled and Progressing, and
	// JobsRejected once the API server has refused a Job.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Pulls counts the (node, image) pulls of the latest operation.
	// +optional
	Pulls PullCounts `json:"pulls,omitempty"`
	// NodesMatched is the number of nodes that match at least one cacheSpec entry.
	// +optional
	NodesMatched int32 `json:"nodesMatched,omitempty"`
	// Digests maps each image pulled by tag with the Always policy (see
	// cacheSpec[].pullPolicy) to the digest the tag resolved to, as the
	// nodes' runtime reported it after the pull, and says on how many nodes
	// the latest operation found it moved. At most 100 images are listed.
	// +optional
	Digests map[string]ImageDigest `json:"digests,omitempty"`
	// Ledger is the controller's record of the pulls settled on each node
	// since the cache was created or last refreshed, so that an update or a
	// restart pulls only what is new. It is the controller's own bookkeeping:
	// its header (format, epoch, removal time) here, the nodes' entries in
	// the cache's ImageCacheSlices (labelled kubefledged.io/imagecache-uid
	// with the cache's UID).
	// +optional
	Ledger *PullLedger `json:"ledger,omitempty"`
}
