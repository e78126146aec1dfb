package options

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
)

// Upstream kube-fledged (v0.10, its master and develop branches, and its
// chart and manifests) passes flags and environment variables this
// controller has no use for, or names otherwise. They are accepted, so
// that its Deployment runs this controller unchanged, hidden from --help,
// and each says once, at start, what to use instead.

// The upstream environment variables this controller ignores.
const (
	UpstreamCRIClientImageEnv = "KUBEFLEDGED_CRI_CLIENT_IMAGE"
	UpstreamBusyboxImageEnv   = "BUSYBOX_IMAGE"
)

// upstreamFlags holds the values of upstream's flags.
type upstreamFlags struct {
	jobsMaxSurge int
	ignored      struct {
		str string
		b   bool
		n   int
	}
}

// addUpstreamFlags registers upstream's flags, deprecated (pflag hides
// them and prints the message when one is used).
func (o *Options) addUpstreamFlags(fs *pflag.FlagSet) {
	u := &o.upstream
	fs.IntVar(&u.jobsMaxSurge, "jobs-max-surge", 0, "")
	_ = fs.MarkDeprecated("jobs-max-surge", "use --max-in-flight-jobs (a value above 0 sets it, unless --max-in-flight-jobs is given).")
	// glog's flags: this controller logs through klog to standard error,
	// with --logging-format, -v and --vmodule.
	for _, name := range []string{"stderrthreshold", "log_dir", "log_backtrace_at", "log_link"} {
		fs.StringVar(&u.ignored.str, name, "", "")
		_ = fs.MarkDeprecated(name, "ignored: the controller logs to standard error; use -v and --logging-format.")
	}
	for _, name := range []string{"logtostderr", "alsologtostderr"} {
		fs.BoolVar(&u.ignored.b, name, false, "")
		_ = fs.MarkDeprecated(name, "ignored: the controller logs to standard error.")
	}
	// Older upstream manifests name their docker or crictl image; the
	// delete and pin Jobs run this project's CRI tool, whose image is
	// another (running fledged-cri in upstream's would fail every Job).
	fs.StringVar(&u.ignored.str, "cri-client-image", "", "")
	_ = fs.MarkDeprecated("cri-client-image", "ignored: upstream's docker or crictl image cannot run the delete and pin Jobs; use --cri-image for this project's CRI image.")
	fs.IntVar(&u.ignored.n, "logbuflevel", 0, "")
	_ = fs.MarkDeprecated("logbuflevel", "ignored: the controller logs to standard error; use --log-flush-frequency.")
}

// ApplyUpstream gives upstream's flags their meaning here, once the flags
// are parsed: --jobs-max-surge is --max-in-flight-jobs unless that is given.
func (o *Options) ApplyUpstream(fs *pflag.FlagSet) {
	if fs.Changed("jobs-max-surge") && !fs.Changed("max-in-flight-jobs") && o.upstream.jobsMaxSurge > 0 {
		o.MaxInFlightJobs = o.upstream.jobsMaxSurge
	}
}

// UpstreamWarnings says, once each, which of upstream's environment
// variables are set and ignored, and what to use instead.
func UpstreamWarnings() []string {
	var out []string
	if v := os.Getenv(UpstreamCRIClientImageEnv); v != "" {
		out = append(out, fmt.Sprintf("$%s (%s) is ignored: upstream's docker or crictl image cannot run the delete and pin Jobs, "+
			"which run this project's CRI image: set --cri-image or $%s", UpstreamCRIClientImageEnv, v, CRIImageEnv))
	}
	if v := os.Getenv(UpstreamBusyboxImageEnv); v != "" {
		out = append(out, fmt.Sprintf("$%s (%s) is ignored: the pull Jobs' init container runs this project's helper image: "+
			"set --helper-image or $%s", UpstreamBusyboxImageEnv, v, HelperImageEnv))
	}
	return out
}
