package options

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func parse(t *testing.T, args ...string) (*Options, error) {
	t.Helper()
	o := New()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.Complete()
	return o, o.Validate()
}

func TestDefaults(t *testing.T) {
	t.Setenv(HelperImageEnv, "")
	t.Setenv(CRIImageEnv, "")
	o, err := parse(t)
	if err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if o.ImagePullDeadline != 5*time.Minute || o.ImageCacheRefreshPeriod != 15*time.Minute ||
		o.ImagePullPolicy != "IfNotPresent" || o.JobRetentionPolicy != "delete" || o.ImagesPerJob != 10 || o.NodeStatusMaxImages != 50 {
		t.Errorf("unexpected defaults: %+v", o)
	}
	if o.HelperImage != DefaultHelperImage() || o.CRIImage != DefaultCRIImage() {
		t.Errorf("helper image %q and CRI image %q, want %q and %q", o.HelperImage, o.CRIImage, DefaultHelperImage(), DefaultCRIImage())
	}
	if o.PullRetryDeadline != time.Hour || o.PullRetryMaxBackoff != 5*time.Minute {
		t.Errorf("pull retries: deadline %s, longest wait %s", o.PullRetryDeadline, o.PullRetryMaxBackoff)
	}
	if o.StatusBatchPeriod != time.Second {
		t.Errorf("status batch period %s, want 1s", o.StatusBatchPeriod)
	}
}

func TestCRIImageFromEnvironment(t *testing.T) {
	t.Setenv(CRIImageEnv, "registry.local/kube-fledged-cri:v1")
	o, err := parse(t)
	if err != nil {
		t.Fatal(err)
	}
	if o.CRIImage != "registry.local/kube-fledged-cri:v1" {
		t.Errorf("CRI image %q", o.CRIImage)
	}
	if o, err = parse(t, "--cri-image=other/cri:v2"); err != nil || o.CRIImage != "other/cri:v2" {
		t.Errorf("the flag should win over the environment, got %q (%v)", o.CRIImage, err)
	}
}

func TestHelperImageFromEnvironment(t *testing.T) {
	t.Setenv(HelperImageEnv, "registry.local/kube-fledged:v1")
	o, err := parse(t)
	if err != nil {
		t.Fatal(err)
	}
	if o.HelperImage != "registry.local/kube-fledged:v1" {
		t.Errorf("helper image %q", o.HelperImage)
	}
	o, err = parse(t, "--helper-image=other/image:v2")
	if err != nil {
		t.Fatal(err)
	}
	if o.HelperImage != "other/image:v2" {
		t.Errorf("the flag should win over the environment, got %q", o.HelperImage)
	}
}

func TestInvalidValues(t *testing.T) {
	cases := map[string]string{
		"--image-pull-deadline-duration=0s":   "--image-pull-deadline-duration",
		"--pull-retry-deadline=-1m":           "--pull-retry-deadline",
		"--status-batch-period=-1s":           "--status-batch-period",
		"--status-batch-period=2m":            "--status-batch-period",
		"--pull-retry-max-backoff=1s":         "--pull-retry-max-backoff",
		"--image-cache-refresh-frequency=10s": "--image-cache-refresh-frequency",
		"--image-cache-refresh-frequency=-1m": "--image-cache-refresh-frequency",
		"--image-pull-policy=Never":           "--image-pull-policy",
		"--job-retention-policy=keep":         "--job-retention-policy",
		"--images-per-job=0":                  "--images-per-job",
		"--images-per-job=101":                "--images-per-job",
		"--max-in-flight-jobs=0":              "--max-in-flight-jobs",
		"--workers=0":                         "--workers",
		"--kube-api-qps=0":                    "--kube-api-qps",
		"--kube-api-burst=0":                  "--kube-api-burst",
		"--leader-elect --leader-elect-lease-duration=5s --leader-elect-renew-deadline=10s": "--leader-elect-lease-duration",
		"--metrics-bind-address=8080":                    "--metrics-bind-address",
		"--job-start-deadline=1s":                        "--job-start-deadline",
		"--node-startup-taint=not/a/key":                 "--node-startup-taint",
		"--node-startup-taint-timeout=1s":                "--node-startup-taint-timeout",
		"--node-status-max-images=-2":                    "--node-status-max-images",
		"--job-tolerations=dedicated:Sometimes":          "--job-tolerations",
		"--helper-image-architectures=amd64,":            "--helper-image-architectures",
		"--job-container-requests=cpu":                   "--job-container-requests",
		"--job-container-limits=memory=lots":             "--job-container-limits",
		"--job-container-requests=memory=128Mi":          "--job-container-requests",
		"--image-delete-job-service-account-name=Bad_SA": "--image-delete-job-service-account-name",
		"--logging-format=xml":                           "--logging-format",
	}
	for arg, flagName := range cases {
		t.Run(arg, func(t *testing.T) {
			_, err := parse(t, strings.Fields(arg)...)
			if err == nil {
				t.Fatalf("%s accepted", arg)
			}
			if !strings.Contains(err.Error(), flagName) {
				t.Errorf("error %q does not name %s", err, flagName)
			}
		})
	}
	if _, err := parse(t, "--image-cache-refresh-frequency=0"); err != nil {
		t.Errorf("0 should disable the refresh: %v", err)
	}
	if _, err := parse(t, "--workers=x"); err == nil {
		t.Error("a non-number for --workers was accepted")
	}
}

// TestControllerNamespace: the delete Jobs' namespace is the controller's,
// from the environment, else kube-fledged; the Lease follows it unless set.
func TestControllerNamespace(t *testing.T) {
	t.Setenv(NamespaceEnv, "")
	o, err := parse(t)
	if err != nil || o.Namespace != DefaultNamespace || o.LeaderElectResourceNamespace != DefaultNamespace ||
		o.DeleteJobServiceAccountName != DefaultDeleteJobServiceAccount {
		t.Fatalf("without the environment: %v, namespace %q, lease namespace %q, account %q", err, o.Namespace,
			o.LeaderElectResourceNamespace, o.DeleteJobServiceAccountName)
	}
	t.Setenv(NamespaceEnv, "ops")
	o, err = parse(t, "--leader-elect-resource-namespace=leases")
	if err != nil || o.Namespace != "ops" || o.LeaderElectResourceNamespace != "leases" {
		t.Fatalf("from the environment: %v, namespace %q, lease namespace %q", err, o.Namespace, o.LeaderElectResourceNamespace)
	}
	t.Setenv(NamespaceEnv, "Not_A_Namespace")
	if _, err := parse(t); err == nil || !strings.Contains(err.Error(), NamespaceEnv) {
		t.Errorf("a bad $%s: %v", NamespaceEnv, err)
	}
}

// TestLoggingFlags: --logging-format and -v are component-base's, as in the
// Kubernetes components, and json is a format.
func TestLoggingFlags(t *testing.T) {
	o, err := parse(t, "--logging-format=json", "-v=4")
	if err != nil {
		t.Fatalf("json logging refused: %v", err)
	}
	if o.Logs.Format != "json" || o.Logs.Verbosity != 4 {
		t.Errorf("logging options %+v, want json and 4", o.Logs)
	}
	o, err = parse(t, "--vmodule=controller=5")
	if err != nil || o.Logs.Format != "text" || len(o.Logs.VModule) != 1 {
		t.Errorf("default logging format %q with one vmodule entry (%v), want text", o.Logs.Format, err)
	}
	// As in Kubernetes, --vmodule works with text only.
	if _, err := parse(t, "--logging-format=json", "--vmodule=controller=5"); err == nil {
		t.Error("--vmodule with json was accepted")
	}
}

// TestDefaultImagesFollowTheVersion: a release's binary names its own
// release's images; a build without a version names the tag latest.
func TestDefaultImagesFollowTheVersion(t *testing.T) {
	for v, want := range map[string]string{
		"v0.2.0":                  "ghcr.io/kube-fledged/kube-fledged-helper:v0.2.0",
		"v0.2.0-3-gabc1234-dirty": "ghcr.io/kube-fledged/kube-fledged-helper:v0.2.0-3-gabc1234-dirty",
		"dev":                     "ghcr.io/kube-fledged/kube-fledged-helper:latest",
		"":                        "ghcr.io/kube-fledged/kube-fledged-helper:latest",
		"v1.0.0+build.5":          "ghcr.io/kube-fledged/kube-fledged-helper:latest",
	} {
		if got := defaultImage("-helper", v); got != want {
			t.Errorf("version %q: %s, want %s", v, got, want)
		}
	}
}
