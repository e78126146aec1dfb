// Package options holds the controller's command-line flags, their defaults
// and their validation.
package options

import (
	"os"
	"regexp"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	logsapi "k8s.io/component-base/logs/api/v1"

	// The JSON log format, for --logging-format=json.
	_ "k8s.io/component-base/logs/json/register"

	"kubefledged.io/kube-fledged/pkg/version"
)

// DefaultHelperImage is the project's helper image of this build's version,
// a few MB holding only the fledged-helper binary, which the pull Jobs' init
// container copies into each pod.
func DefaultHelperImage() string { return defaultImage("-helper", version.Get().Version) }

// DefaultCRIImage is the project's CRI tool image of this build's version,
// holding only the fledged-cri binary, which the delete and pin Jobs run.
func DefaultCRIImage() string { return defaultImage("-cri", version.Get().Version) }

// ImageRepository is where the project publishes its images.
const ImageRepository = "ghcr.io/kube-fledged/kube-fledged"

// defaultImage is the project's image with suffix, tagged with the build's
// version (make release pushes the three under it); a build that was not
// given a version, such as go build alone, names the tag latest.
func defaultImage(suffix, v string) string {
	if v == "" || v == "dev" || !imageTag.MatchString(v) {
		v = "latest"
	}
	return ImageRepository + suffix + ":" + v
}

// imageTag is what an image tag may hold.
var imageTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// HelperImageEnv and CRIImageEnv set the helper and CRI remover images when
// their flags are not given.
const (
	HelperImageEnv = "KUBEFLEDGED_HELPER_IMAGE"
	CRIImageEnv    = "KUBEFLEDGED_CRI_IMAGE"
)

// Job retention policies.
const (
	RetentionDelete = "delete"
	RetentionRetain = "retain"
)

// Options are the controller's settings.
type Options struct {
	Kubeconfig string
	Master     string

	ImagePullDeadline       time.Duration
	JobStartDeadline        time.Duration
	ImageCacheRefreshPeriod time.Duration
	ImagePullPolicy         string
	ServiceAccountName      string
	JobPriorityClassName    string
	JobRetentionPolicy      string
	HelperImage             string
	CRIImage                string
	CRISocketPath           string
	DeleteJobHostNetwork    bool
	// DeleteJobServiceAccountName is the service account of the delete
	// Jobs' pods, in the controller's namespace.
	DeleteJobServiceAccountName string
	// Namespace is the namespace the controller runs in ($KUBEFLEDGED_NAMESPACE),
	// where its delete Jobs run.
	Namespace               string
	NodeStartupTaint        string
	NodeStartupTaintTimeout time.Duration
	// NodeStatusMaxImages is the kubelets' nodeStatusMaxImages.
	NodeStatusMaxImages int
	// PullRetryDeadline is how long after its operation starts a pull that
	// failed for a reason that may pass is tried again (0: never), and
	// PullRetryMaxBackoff the longest wait between two tries.
	PullRetryDeadline   time.Duration
	PullRetryMaxBackoff time.Duration
	// StatusBatchPeriod is the least time between two writes of a cache's
	// status and ledger while its operation goes on.
	StatusBatchPeriod time.Duration
	// ImagePinning lets caches pin their images (spec.pin); PinBudgetPercent
	// bounds the share of a node's image filesystem the pinned images may
	// take, on the filesystem of ContainerdRoot.
	ImagePinning bool
	// ImageRemoval lets purges, and updates that drop images, remove them
	// from the nodes (with delete Jobs in the controller's namespace).
	ImageRemoval     bool
	PinBudgetPercent int
	ContainerdRoot   string
	// UnpinTimeout bounds how long a deleted cache waits for its pins to
	// be taken away.
	UnpinTimeout time.Duration
	// upstream holds the flags of upstream kube-fledged (upstream.go).
	upstream upstreamFlags
	// JobTolerations are the pull and delete pods' tolerations beyond the
	// defaults (puller.ParseTolerations).
	JobTolerations []string
	// HelperImageArchitectures are the kubernetes.io/arch values the
	// helper image has.
	HelperImageArchitectures []string
	// JobContainerRequests and JobContainerLimits are every pull and
	// delete container's, NAME=QUANTITY,... (puller.ParseResources).
	JobContainerRequests string
	JobContainerLimits   string

	ImagesPerJob    int
	MaxInFlightJobs int
	// MaxFinishedJobs is the most finished pull and delete Jobs a cache
	// keeps while its operation goes on.
	MaxFinishedJobs int
	Workers         int
	KubeAPIQPS      float32
	KubeAPIBurst    int

	LeaderElect                  bool
	LeaderElectLeaseDuration     time.Duration
	LeaderElectRenewDeadline     time.Duration
	LeaderElectRetryPeriod       time.Duration
	LeaderElectResourceName      string
	LeaderElectResourceNamespace string

	MetricsBindAddress     string
	HealthProbeBindAddress string
	// Profiling serves net/http/pprof under /debug/pprof on the metrics address.
	Profiling bool

	// Logs are k8s.io/component-base's logging options: --logging-format
	// (text or json), -v, --vmodule and the formats' own flags, as the
	// Kubernetes components have them.
	Logs *logsapi.LoggingConfiguration
}

// NamespaceEnv names the environment variable that holds the namespace the
// controller runs in (the Deployment sets it from the downward API).
const NamespaceEnv = "KUBEFLEDGED_NAMESPACE"

// DefaultNamespace is used when NamespaceEnv is not set.
const DefaultNamespace = "kube-fledged"

// DefaultDeleteJobServiceAccount is the service account of the delete Jobs,
// which deploy/ creates in the controller's namespace, with no rights.
const DefaultDeleteJobServiceAccount = "kube-fledged-image-delete"

// New returns the options with their defaults.
func New() *Options {
	return &Options{
		ImagePullDeadline:           5 * time.Minute,
		JobStartDeadline:            2 * time.Minute,
		NodeStartupTaintTimeout:     10 * time.Minute,
		NodeStatusMaxImages:         50,
		PullRetryDeadline:           time.Hour,
		PullRetryMaxBackoff:         5 * time.Minute,
		StatusBatchPeriod:           time.Second,
		ImagePinning:                true,
		ImageRemoval:                true,
		PinBudgetPercent:            50,
		ContainerdRoot:              "/var/lib/containerd",
		UnpinTimeout:                10 * time.Minute,
		HelperImageArchitectures:    []string{"amd64", "arm64"},
		JobContainerRequests:        "cpu=10m,memory=16Mi",
		JobContainerLimits:          "memory=64Mi",
		ImageCacheRefreshPeriod:     15 * time.Minute,
		ImagePullPolicy:             string(corev1.PullIfNotPresent),
		JobRetentionPolicy:          RetentionDelete,
		DeleteJobServiceAccountName: DefaultDeleteJobServiceAccount,
		ImagesPerJob:                10,
		MaxInFlightJobs:             400,
		MaxFinishedJobs:             2000,
		Workers:                     4,
		KubeAPIQPS:                  50,
		KubeAPIBurst:                100,

		LeaderElectLeaseDuration: 15 * time.Second,
		LeaderElectRenewDeadline: 10 * time.Second,
		LeaderElectRetryPeriod:   2 * time.Second,
		LeaderElectResourceName:  "kube-fledged",

		MetricsBindAddress:     ":8080",
		HealthProbeBindAddress: ":8081",

		Logs: logsapi.NewLoggingConfiguration(),
	}
}

// NewFlagSet is the controller's flag set: the options' flags and
// --version, whose value it returns.
func NewFlagSet(o *Options) (*pflag.FlagSet, *bool) {
	fs := pflag.NewFlagSet("fledged", pflag.ContinueOnError)
	o.AddFlags(fs)
	return fs, fs.Bool("version", false, "Print the version and exit.")
}

// AddFlags registers the flags, the logging options' among them.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "Path to a kubeconfig. Only needed out of cluster.")
	fs.StringVar(&o.Master, "master", o.Master, "The address of the Kubernetes API server. Overrides any value in the kubeconfig. Only needed out of cluster.")
	fs.DurationVar(&o.ImagePullDeadline, "image-pull-deadline-duration", o.ImagePullDeadline, "How long one image may take to pull onto a node, from when the kubelet starts pulling it, before it counts as failed; a cacheSpec entry's pullDeadline overrides it for the entry's images.")
	fs.DurationVar(&o.StatusBatchPeriod, "status-batch-period", o.StatusBatchPeriod, "The least time between two writes of a cache's status and ledger slices while its operation goes on: a pass that comes within it after such a write waits for its end, and writes what settled meanwhile at once (as the EndpointSlice controller's --endpointslice-updates-batch-period). An operation's start, its end and a change of its state hold no pass; a deleted cache is never held. 0: a pass at every event.")
	fs.DurationVar(&o.PullRetryDeadline, "pull-retry-deadline", o.PullRetryDeadline, "How long after its operation started a pull that failed for a reason that may pass (a registry or network that is down, slow or busy: a timeout, a refused connection, a 5xx or 429 answer) is tried again, by itself, with exponential backoff; the operation goes on meanwhile. 0: such a pull fails as any other, until the next refresh. A missing image, refused credentials or a platform the image lacks fail at once, never retried.")
	fs.DurationVar(&o.PullRetryMaxBackoff, "pull-retry-max-backoff", o.PullRetryMaxBackoff, "The longest wait between two tries of a pull that failed for a reason that may pass (the kubelet's own image pull backoff stops at 5m too); the waits start at 10s and double. After a registry comes back, its pulls succeed within about this long.")
	fs.DurationVar(&o.JobStartDeadline, "job-start-deadline", o.JobStartDeadline, "How long a Job's pod may take to be created, scheduled and to install the helper before the Job's images fail with the reason it did not start.")
	fs.DurationVar(&o.ImageCacheRefreshPeriod, "image-cache-refresh-frequency", o.ImageCacheRefreshPeriod, "How often every cache is pulled again, to put back images removed from nodes. 0 disables the periodic refresh.")
	fs.StringVar(&o.ImagePullPolicy, "image-pull-policy", o.ImagePullPolicy, "Pull policy of images by tag in cacheSpec entries without a pullPolicy, but for :latest and untagged images, which are pulled Always, as a Pod's container would be: IfNotPresent (images a node already reports are not pulled again) or Always (pulled again on every create and refresh, so that a moved tag is brought up to date). An image by digest is never pulled again.")
	fs.StringVar(&o.ServiceAccountName, "service-account-name", o.ServiceAccountName, "Service account of the pull Jobs' pods (empty: the namespace's default).")
	fs.StringVar(&o.JobPriorityClassName, "job-priority-class-name", o.JobPriorityClassName, "Priority class of the pull Jobs' pods (empty: none).")
	fs.StringVar(&o.JobRetentionPolicy, "job-retention-policy", o.JobRetentionPolicy, "What happens to finished Jobs when their operation completes: delete or retain.")
	fs.StringVar(&o.HelperImage, "helper-image", o.HelperImage, "The project's helper image, whose fledged-helper binary the pull Jobs' init container installs in each pull pod (default: $"+HelperImageEnv+", else "+DefaultHelperImage()+"). Every node that warms pulls it.")
	fs.StringVar(&o.CRIImage, "cri-image", o.CRIImage, "The project's CRI remover image, whose fledged-cri binary the delete Jobs run (default: $"+CRIImageEnv+", else "+DefaultCRIImage()+").")
	fs.StringVar(&o.CRISocketPath, "cri-socket-path", o.CRISocketPath, "The container runtime's CRI socket on the nodes, for removing images (default: found from each node's runtime: containerd, CRI-O, or k3s's and RKE2's containerd).")
	fs.BoolVar(&o.DeleteJobHostNetwork, "image-delete-job-host-network", o.DeleteJobHostNetwork, "Run the Jobs that remove images in the host's network namespace.")
	fs.StringVar(&o.DeleteJobServiceAccountName, "image-delete-job-service-account-name", o.DeleteJobServiceAccountName, "Service account of the Jobs that remove images, which run in the controller's namespace ($"+NamespaceEnv+", else "+DefaultNamespace+"). It needs no rights; its token is never mounted.")
	fs.StringVar(&o.NodeStartupTaint, "node-startup-taint", o.NodeStartupTaint, "Key of a NoSchedule taint that nodes join with (kubelet --register-with-taints, Karpenter startupTaints); the controller removes it once every cache matching the node has settled its pulls there. Empty: off.")
	fs.DurationVar(&o.NodeStartupTaintTimeout, "node-startup-taint-timeout", o.NodeStartupTaintTimeout, "The longest a node is held by --node-startup-taint, counted from the node's creation (or from when the controller saw the taint added to it); then the taint is removed anyway, with a Warning event naming what was pending. A controller that starts late releases at once the nodes past it.")
	fs.IntVar(&o.NodeStatusMaxImages, "node-status-max-images", o.NodeStatusMaxImages, "The most images the kubelets list in a node's status (their nodeStatusMaxImages; -1: all). Only on a node that lists fewer does a kubelet of 1.33 or later prove, by pulling, that an image was not there, so that a purge may remove it; set it to the kubelets' value, or lower.")
	fs.BoolVar(&o.ImageRemoval, "image-removal", o.ImageRemoval, "Let a purge, and an update that drops images, remove the images the cache pulled from its nodes, with delete Jobs that run as root with the runtime's socket in the controller's namespace. false: no image is removed (a purge keeps them all, status.kept says RemovalDisabled), so that, with --image-pinning=false too, no Job of the controller runs as root in its namespace, which then needs no privileged Pod Security label.")
	fs.BoolVar(&o.ImagePinning, "image-pinning", o.ImagePinning, "Let caches with spec.pin pin their images against the kubelet's image garbage collection (containerd only). false: no cache pins, and the pins the caches hold are taken away.")
	fs.IntVar(&o.PinBudgetPercent, "pin-budget-percent", o.PinBudgetPercent, "The most percent of a node's image filesystem the pinned images (whoever pinned them, by the runtime's own measure of their size) may take; a pin past it is refused with PinBudgetExceeded, and the image stays cached, unpinned. 0: no budget. Past the kubelet's eviction threshold, pinned images make it evict pods instead.")
	fs.DurationVar(&o.UnpinTimeout, "unpin-timeout", o.UnpinTimeout, "How long a deleted cache that pinned images waits for its pins to be taken away from its nodes (a node that is gone holds none), and 30s more for each wave of --max-in-flight-jobs unpin Jobs past the first; then it goes all the same, with a Warning event naming the nodes where its pins may stay.")
	fs.StringVar(&o.ContainerdRoot, "containerd-root", o.ContainerdRoot, "containerd's root folder on the nodes, whose filesystem the pin budget is a share of; the pin Jobs mount it read-only.")
	fs.StringSliceVar(&o.JobTolerations, "job-tolerations", o.JobTolerations, "Tolerations of the pull and delete pods beyond a DaemonSet's (not-ready and unreachable; disk-, memory- and PID-pressure NoSchedule) and the --node-startup-taint: KEY[=VALUE][:EFFECT], or * for every taint. A node with a NoSchedule or NoExecute taint they do not tolerate is skipped until the taint goes; a cordoned node, or one whose network is not ready, is skipped whatever they tolerate.")
	fs.StringSliceVar(&o.HelperImageArchitectures, "helper-image-architectures", o.HelperImageArchitectures, "The kubernetes.io/arch values the helper image has; nodes of other architectures, and nodes not of kubernetes.io/os linux, are skipped. Empty: any architecture.")
	fs.StringVar(&o.JobContainerRequests, "job-container-requests", o.JobContainerRequests, "Resource requests of every container of the pull and delete pods, NAME=QUANTITY,...; a pull Job of N images requests N times as much, from the namespace's quota.")
	fs.StringVar(&o.JobContainerLimits, "job-container-limits", o.JobContainerLimits, "Resource limits of every container of the pull and delete pods, NAME=QUANTITY,...")
	fs.IntVar(&o.ImagesPerJob, "images-per-job", o.ImagesPerJob, "The most images one pull Job pulls onto its node.")
	fs.IntVar(&o.MaxInFlightJobs, "max-in-flight-jobs", o.MaxInFlightJobs, "The most pull and delete Jobs whose pods have not finished, across the cluster.")
	fs.IntVar(&o.MaxFinishedJobs, "max-finished-jobs", o.MaxFinishedJobs, "The most finished pull and delete Jobs one cache keeps while its operation goes on; past it, the oldest go as soon as the cache's status and ledger record their outcomes (those of a node whose failed pull is to be tried again stay, to count the tries). The rest go when the operation completes, as --job-retention-policy says; with retain, none goes early.")
	fs.IntVar(&o.Workers, "workers", o.Workers, "ImageCaches reconciled in parallel.")
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "Steady requests per second to the API server.")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "Burst of requests to the API server.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "Elect a leader with a coordination.k8s.io Lease, so that several replicas can run; only the leader works.")
	fs.DurationVar(&o.LeaderElectLeaseDuration, "leader-elect-lease-duration", o.LeaderElectLeaseDuration, "How long a follower waits, after the leader last renewed, before it takes the lease.")
	fs.DurationVar(&o.LeaderElectRenewDeadline, "leader-elect-renew-deadline", o.LeaderElectRenewDeadline, "How long the leader keeps retrying to renew before it gives up leading (and exits).")
	fs.DurationVar(&o.LeaderElectRetryPeriod, "leader-elect-retry-period", o.LeaderElectRetryPeriod, "How often candidates try to take or renew the lease.")
	fs.StringVar(&o.LeaderElectResourceName, "leader-elect-resource-name", o.LeaderElectResourceName, "Name of the Lease.")
	fs.StringVar(&o.LeaderElectResourceNamespace, "leader-elect-resource-namespace", o.LeaderElectResourceNamespace, "Namespace of the Lease (default: $"+NamespaceEnv+", else "+DefaultNamespace+").")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, "Address of the Prometheus /metrics endpoint; \"0\" disables it.")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, "Address of /healthz and /readyz; \"0\" disables them.")
	fs.BoolVar(&o.Profiling, "profiling", o.Profiling, "Serve Go profiles (net/http/pprof) under /debug/pprof on the metrics address.")
	logsapi.AddFlags(o.Logs, fs)
	o.addUpstreamFlags(fs)
}

// Complete fills in what depends on the environment.
func (o *Options) Complete() {
	if o.HelperImage == "" {
		o.HelperImage = os.Getenv(HelperImageEnv)
	}
	if o.HelperImage == "" {
		o.HelperImage = DefaultHelperImage()
	}
	if o.CRIImage == "" {
		o.CRIImage = os.Getenv(CRIImageEnv)
	}
	if o.CRIImage == "" {
		o.CRIImage = DefaultCRIImage()
	}
	if o.Namespace == "" {
		o.Namespace = os.Getenv(NamespaceEnv)
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.LeaderElectResourceNamespace == "" {
		o.LeaderElectResourceNamespace = o.Namespace
	}
}
