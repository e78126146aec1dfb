package imagecache

import (
	"time"

	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/ops"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pins"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// Config is the controller's behaviour, from its flags.
type Config struct {
	Puller puller.Config
	// ImagesPerJob is the most images one Job pulls.
	ImagesPerJob int
	// MaxInFlightJobs is the most Jobs whose pods have not finished, across
	// the cluster.
	MaxInFlightJobs int
	// MaxFinishedJobs is the most finished pull and delete Jobs a cache
	// keeps while its operation goes on (0: no bound).
	MaxFinishedJobs int
	// RefreshFrequency is how often each cache is pulled again (0: never).
	RefreshFrequency time.Duration
	// RetainJobs keeps finished Jobs after their operation completes.
	RetainJobs bool
	// CRISocketPath is the runtime socket on the nodes; empty: found from
	// each node's reported runtime.
	CRISocketPath string
	// DeleteJobHostNetwork runs delete Jobs in the host's network.
	DeleteJobHostNetwork bool
	// HelperArchitectures are the kubernetes.io/arch values the helper
	// image has; nodes of others are skipped (empty: none is).
	HelperArchitectures []string
	// NodeStatusMaxImages is the most images the kubelets list in a node's
	// status (their nodeStatusMaxImages; -1: all). A node that lists fewer
	// lists every image it has (pullevents.ProvesAbsence).
	NodeStatusMaxImages int
	// PullRetryDeadline is how long after its operation starts a pull
	// that failed for a reason that may pass is tried again (0: never),
	// and PullRetryMaxBackoff the longest wait between two tries
	// (internal/ops).
	PullRetryDeadline   time.Duration
	PullRetryMaxBackoff time.Duration
	// Pinning lets caches pin their images (spec.pin); off, the pins the
	// caches hold are taken away.
	Pinning bool
	// NoRemoval turns image removal off: a purge keeps every image
	// (reasons.RemovalDisabled), and an update that drops images leaves
	// them; no delete Job is made.
	NoRemoval bool
	// PinBudgetPercent is the most percent of a node's image filesystem
	// the pinned images may take (0: no budget), and ContainerdRoot the
	// folder on the nodes whose filesystem that is (containerd's root).
	PinBudgetPercent int
	ContainerdRoot   string
	// UnpinTimeout bounds how long a deleted cache waits for its pins to
	// be taken away (0: 10 minutes).
	UnpinTimeout time.Duration
	// StatusBatchPeriod is the least time between two writes of a cache's
	// status and ledger while its operation goes on (0: at every pass).
	StatusBatchPeriod time.Duration
}

// opsConfig is what the operations need of the configuration.
func (cfg Config) opsConfig() ops.Config {
	return ops.Config{Puller: cfg.Puller, ImagesPerJob: cfg.ImagesPerJob, NodeStatusMaxImages: cfg.NodeStatusMaxImages,
		CRISocketPath: cfg.CRISocketPath, DeleteJobHostNetwork: cfg.DeleteJobHostNetwork, NoRemoval: cfg.NoRemoval,
		PullRetryDeadline: cfg.PullRetryDeadline, PullRetryMaxBackoff: cfg.PullRetryMaxBackoff, RefreshFrequency: cfg.RefreshFrequency}
}

// pinsConfig is what the pins need of the configuration.
func (cfg Config) pinsConfig() pins.Config {
	return pins.Config{Puller: cfg.Puller, Pinning: cfg.Pinning, CRISocketPath: cfg.CRISocketPath,
		PinBudgetPercent: cfg.PinBudgetPercent, ContainerdRoot: cfg.ContainerdRoot, UnpinTimeout: cfg.UnpinTimeout,
		MaxInFlightJobs: cfg.MaxInFlightJobs}
}

// NodeFilter says which nodes the pull pods of this configuration can run
// on.
func (cfg Config) NodeFilter() plan.NodeFilter {
	return plan.NodeFilter{Architectures: cfg.HelperArchitectures, Tolerations: cfg.Puller.Tolerations}
}
