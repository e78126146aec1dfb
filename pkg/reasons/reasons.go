// Package reasons holds every reason the ImageCache controller writes: in
// its Events, in the conditions' reason, in status.failures, status.kept and
// status.unpinned, and for the nodes a cache skips. Each says, on its line,
// what it means; hack/docgen reads those lines into
// docs/reference/events.md. The reasons of a Job's outcome (the registry's,
// the runtime's) are the puller's; the node-warming controller's are its
// own.
package reasons

// The conditions' reasons, beyond the operations (ImageCacheCreate, ...),
// which Reconciling and Progressing give while one runs.
const (
	Cached      = "Cached"      // Ready True, Stalled False: every wanted image is on its nodes
	Removing    = "Removing"    // Ready False while a purge removes images
	PullsFailed = "PullsFailed" // Ready False, Stalled True: the operation ended with failed pulls
	Purged      = "Purged"      // Ready False, Stalled True: the cache was purged; it pulls again when changed or refreshed
	Complete    = "Complete"    // Reconciling and Progressing False: no operation runs
	// NoneRejected is JobsRejected's reason once no Job of the latest
	// operation is refused.
	NoneRejected = "NoneRejected"
)

// Why a node cannot take a pull: for now (it is pulled onto once the reason
// goes), or, for its platform, at all (plan.NeverPulls).
const (
	NodeNotReady      = "NodeNotReady"            // skipped: the node's Ready condition is not True
	NodeDeleting      = "NodeDeleting"            // skipped: the node is being deleted
	NoHostnameLabel   = "NoHostnameLabel"         // skipped: the node has no kubernetes.io/hostname label to pin a Job by
	UnsupportedOS     = "UnsupportedOS"           // skipped, for good: the node is not Linux
	UnsupportedArch   = "UnsupportedArchitecture" // skipped, for good: the helper image has no variant for the node's architecture
	NodeUnschedulable = "NodeUnschedulable"       // skipped: the node is cordoned
	NetworkNotReady   = "NetworkNotReady"         // skipped: the node's pod network is not ready
	NodeTainted       = "NodeTainted"             // skipped: a NoSchedule or NoExecute taint the pull pods do not tolerate
	PurgeEnded        = "PurgeEnded"              // a node whose pairs were left unsettled when the purge ended
)

// Failures of an image on a node (status.failures), of our own; and the
// events that go with some.
const (
	InvalidImageName = "InvalidImageName" // status.failures: the image reference does not parse
	UnknownRuntime   = "UnknownRuntime"   // status.failures: no CRI socket is known for the node's runtime, so nothing can be removed there
	JobRejected      = "JobRejected"      // status.failures and Event: the API server refused the pull Job (a quota, a webhook, a policy)
	// UnpinFailed is the failure of an unpin the controller gave up: the
	// image may stay pinned on the node.
	UnpinFailed = "UnpinFailed"
)

// Why a purge leaves an image on a node (status.kept).
const (
	WantedByOtherCache   = "WantedByOtherCache"   // status.kept: another ImageCache wants the image on the node (named in the message)
	NotPulledByThisCache = "NotPulledByThisCache" // status.kept: this cache's own pull did not bring the image there
	RemovalDisabled      = "RemovalDisabled"      // status.kept: the controller runs with --image-removal=false
)

// The controller's Events on an ImageCache, beyond those above.
const (
	Started         = "Started"         // Event: an operation started
	Succeeded       = "Succeeded"       // Event: an operation completed with every pull settled well
	Failed          = "Failed"          // Event: an operation completed with failures
	NodesReplaced   = "NodesReplaced"   // Event: nodes re-created under the same name are warmed again
	StatusTrimmed   = "StatusTrimmed"   // Event: the status was cut to fit in one object
	TooLarge        = "TooLarge"        // Ready, Stalled and Event: the cache is too large to record in one object, and gets no Jobs
	Unpinned        = "Unpinned"        // Event: a deleted cache's pins were taken away from every node
	PinsNotReleased = "PinsNotReleased" // Event: a deleted cache's pins could not all be taken away in time
	// ImageMoved is the event of a tag found moved.
	ImageMoved = "ImageMoved"
	// ImagesGone is the event of a refresh started for images gone.
	ImagesGone = "ImagesGone"
	// QuotaExceeded is the Warning event of a create a quota refused.
	QuotaExceeded = "QuotaExceeded"
	// LedgerNotWritten is the Warning event of a slice of the ledger the
	// API server refused to write (a quota, the controller's rights, a
	// policy).
	LedgerNotWritten = "LedgerNotWritten"
	// RefreshIgnored is the event of a refresh annotation a purge
	// consumed.
	RefreshIgnored = "RefreshIgnored"
)

// Reasons of others' events that the controller reads.
const (
	Pulling = "Pulling" // the kubelet's Event as it starts a pull (read, not written); also Ready's reason while pulls run
	Pulled  = "Pulled"  // the kubelet's Event once it has an image (read, not written)
	// FailedCreate is the Job controller's event reason when it cannot
	// create a Job's pod.
	FailedCreate = "FailedCreate"
)
