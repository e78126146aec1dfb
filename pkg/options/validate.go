package options

import (
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	logsapi "k8s.io/component-base/logs/api/v1"

	"kubefledged.io/kube-fledged/pkg/puller"
)

// Validate returns every invalid value, naming its flag.
func (o *Options) Validate() error {
	var errs []error
	if o.ImagePullDeadline < time.Second {
		errs = append(errs, fmt.Errorf("--image-pull-deadline-duration must be at least 1s, got %s", o.ImagePullDeadline))
	}
	if o.StatusBatchPeriod < 0 || o.StatusBatchPeriod > time.Minute {
		errs = append(errs, fmt.Errorf("--status-batch-period must be between 0 and 1m, got %s", o.StatusBatchPeriod))
	}
	if o.PullRetryDeadline < 0 {
		errs = append(errs, fmt.Errorf("--pull-retry-deadline must not be negative, got %s", o.PullRetryDeadline))
	}
	if o.PullRetryMaxBackoff < 10*time.Second {
		errs = append(errs, fmt.Errorf("--pull-retry-max-backoff must be at least 10s, got %s", o.PullRetryMaxBackoff))
	}
	if o.JobStartDeadline < 10*time.Second {
		errs = append(errs, fmt.Errorf("--job-start-deadline must be at least 10s, got %s", o.JobStartDeadline))
	}
	if o.NodeStartupTaint != "" {
		if errs2 := validation.IsQualifiedName(o.NodeStartupTaint); len(errs2) > 0 {
			errs = append(errs, fmt.Errorf("--node-startup-taint must be a taint key, got %q: %s", o.NodeStartupTaint, strings.Join(errs2, "; ")))
		}
	}
	if o.NodeStartupTaintTimeout < 10*time.Second {
		errs = append(errs, fmt.Errorf("--node-startup-taint-timeout must be at least 10s, got %s", o.NodeStartupTaintTimeout))
	}
	if _, err := puller.ParseTolerations(o.JobTolerations); err != nil {
		errs = append(errs, fmt.Errorf("--job-tolerations: %w", err))
	}
	for _, a := range o.HelperImageArchitectures {
		if errs2 := validation.IsValidLabelValue(a); a == "" || len(errs2) > 0 {
			errs = append(errs, fmt.Errorf("--helper-image-architectures: %q is not an architecture", a))
		}
	}
	requests, errReq := puller.ParseResources(o.JobContainerRequests)
	if errReq != nil {
		errs = append(errs, fmt.Errorf("--job-container-requests: %w", errReq))
	}
	limits, errLim := puller.ParseResources(o.JobContainerLimits)
	if errLim != nil {
		errs = append(errs, fmt.Errorf("--job-container-limits: %w", errLim))
	}
	for name, req := range requests {
		if lim, ok := limits[name]; ok && req.Cmp(lim) > 0 {
			errs = append(errs, fmt.Errorf("--job-container-requests: %s %s is above its limit %s", name, req.String(), lim.String()))
		}
	}
	if o.NodeStatusMaxImages < -1 {
		errs = append(errs, fmt.Errorf("--node-status-max-images must be -1 (all) or more, got %d", o.NodeStatusMaxImages))
	}
	if o.ImageCacheRefreshPeriod < 0 || (o.ImageCacheRefreshPeriod > 0 && o.ImageCacheRefreshPeriod < time.Minute) {
		errs = append(errs, fmt.Errorf("--image-cache-refresh-frequency must be 0 (off) or at least 1m, got %s", o.ImageCacheRefreshPeriod))
	}
	switch corev1.PullPolicy(o.ImagePullPolicy) {
	case corev1.PullIfNotPresent, corev1.PullAlways:
	default:
		errs = append(errs, fmt.Errorf("--image-pull-policy must be IfNotPresent or Always, got %q", o.ImagePullPolicy))
	}
	switch o.JobRetentionPolicy {
	case RetentionDelete, RetentionRetain:
	default:
		errs = append(errs, fmt.Errorf("--job-retention-policy must be %s or %s, got %q", RetentionDelete, RetentionRetain, o.JobRetentionPolicy))
	}
	if o.ImagesPerJob < 1 || o.ImagesPerJob > 100 {
		errs = append(errs, fmt.Errorf("--images-per-job must be between 1 and 100, got %d", o.ImagesPerJob))
	}
	if o.MaxInFlightJobs < 1 {
		errs = append(errs, fmt.Errorf("--max-in-flight-jobs must be at least 1, got %d", o.MaxInFlightJobs))
	}
	if o.MaxFinishedJobs < 1 {
		errs = append(errs, fmt.Errorf("--max-finished-jobs must be at least 1, got %d", o.MaxFinishedJobs))
	}
	if o.Workers < 1 || o.Workers > 64 {
		errs = append(errs, fmt.Errorf("--workers must be between 1 and 64, got %d", o.Workers))
	}
	if o.KubeAPIQPS <= 0 {
		errs = append(errs, fmt.Errorf("--kube-api-qps must be positive, got %v", o.KubeAPIQPS))
	}
	if o.KubeAPIBurst < 1 {
		errs = append(errs, fmt.Errorf("--kube-api-burst must be at least 1, got %d", o.KubeAPIBurst))
	}
	if o.LeaderElect {
		if o.LeaderElectRetryPeriod <= 0 || o.LeaderElectRenewDeadline <= o.LeaderElectRetryPeriod ||
			o.LeaderElectLeaseDuration <= o.LeaderElectRenewDeadline {
			errs = append(errs, fmt.Errorf("leader election needs 0 < --leader-elect-retry-period (%s) < --leader-elect-renew-deadline (%s) < --leader-elect-lease-duration (%s)",
				o.LeaderElectRetryPeriod, o.LeaderElectRenewDeadline, o.LeaderElectLeaseDuration))
		}
		if o.LeaderElectResourceName == "" {
			errs = append(errs, errors.New("--leader-elect-resource-name must not be empty"))
		}
	}
	for flagName, addr := range map[string]string{"--metrics-bind-address": o.MetricsBindAddress, "--health-probe-bind-address": o.HealthProbeBindAddress} {
		if addr != "0" && addr != "" && !strings.Contains(addr, ":") {
			errs = append(errs, fmt.Errorf("%s must be host:port, :port or 0, got %q", flagName, addr))
		}
	}
	if o.PinBudgetPercent < 0 || o.PinBudgetPercent > 100 {
		errs = append(errs, fmt.Errorf("--pin-budget-percent must be from 0 to 100, got %d", o.PinBudgetPercent))
	}
	if o.UnpinTimeout < time.Second {
		errs = append(errs, fmt.Errorf("--unpin-timeout must be at least 1s, got %s", o.UnpinTimeout))
	}
	if !strings.HasPrefix(o.ContainerdRoot, "/") {
		errs = append(errs, fmt.Errorf("--containerd-root must be an absolute path, got %q", o.ContainerdRoot))
	}
	if o.CRISocketPath != "" && !strings.HasPrefix(strings.TrimPrefix(o.CRISocketPath, "unix://"), "/") {
		errs = append(errs, fmt.Errorf("--cri-socket-path must be an absolute path, got %q", o.CRISocketPath))
	}
	if errs2 := validation.IsDNS1123Subdomain(o.DeleteJobServiceAccountName); len(errs2) > 0 {
		errs = append(errs, fmt.Errorf("--image-delete-job-service-account-name must be a service account name, got %q: %s", o.DeleteJobServiceAccountName, strings.Join(errs2, "; ")))
	}
	if errs2 := validation.IsDNS1123Label(o.Namespace); len(errs2) > 0 {
		errs = append(errs, fmt.Errorf("$%s must be a namespace, got %q: %s", NamespaceEnv, o.Namespace, strings.Join(errs2, "; ")))
	}
	if strings.TrimSpace(o.HelperImage) == "" {
		errs = append(errs, errors.New("--helper-image must not be empty"))
	}
	if strings.TrimSpace(o.CRIImage) == "" {
		errs = append(errs, errors.New("--cri-image must not be empty"))
	}
	for _, e := range logsapi.Validate(o.Logs, nil, nil) {
		errs = append(errs, fmt.Errorf("logging (--logging-format, -v, --vmodule): %s", e.Error()))
	}
	return errors.Join(errs...)
}
