package options

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestUpstreamFlags: what upstream kube-fledged's chart, manifests and
// develop branch pass is accepted, hidden from --help, with one
// deprecation message per flag used; --jobs-max-surge sets
// --max-in-flight-jobs unless that is given.
func TestUpstreamFlags(t *testing.T) {
	t.Setenv(CRIImageEnv, "")
	upstream := []string{"--stderrthreshold=INFO", "--image-pull-deadline-duration=5m", "--image-cache-refresh-frequency=15m",
		"--image-pull-policy=IfNotPresent", "--image-delete-job-host-network=false", "--job-retention-policy=delete",
		"--logtostderr", "--alsologtostderr=true", "--v=2", "--log_dir=/tmp", "--log_backtrace_at=main.go:1", "--log_link=/tmp",
		"--logbuflevel=0", "--jobs-max-surge=50", "--cri-client-image=senthilrch/kubefledged-cri-client:v0.10.0"}
	for _, c := range []struct {
		name     string
		extra    []string
		inFlight int
	}{
		{"alone", nil, 50},
		{"with --max-in-flight-jobs", []string{"--max-in-flight-jobs=10"}, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := New()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			var out bytes.Buffer
			fs.SetOutput(&out)
			o.AddFlags(fs)
			if err := fs.Parse(append(append([]string(nil), upstream...), c.extra...)); err != nil {
				t.Fatalf("upstream's flags refused: %v", err)
			}
			o.ApplyUpstream(fs)
			o.Complete()
			if err := o.Validate(); err != nil {
				t.Fatalf("upstream's flags do not validate: %v", err)
			}
			if o.MaxInFlightJobs != c.inFlight {
				t.Errorf("max in-flight Jobs %d, want %d", o.MaxInFlightJobs, c.inFlight)
			}
			if o.CRIImage != DefaultCRIImage() {
				t.Errorf("--cri-client-image set the CRI image to %s; want it ignored", o.CRIImage)
			}
			for _, name := range []string{"stderrthreshold", "logtostderr", "jobs-max-surge", "log_dir", "cri-client-image"} {
				if n := strings.Count(out.String(), "Flag --"+name+" has been deprecated"); n != 1 {
					t.Errorf("%d deprecation messages for --%s in %q, want 1", n, name, out.String())
				}
				if strings.Contains(fs.FlagUsages(), "--"+name+" ") {
					t.Errorf("--%s shows in the usage", name)
				}
			}
			if !strings.Contains(out.String(), "Flag --jobs-max-surge has been deprecated, use --max-in-flight-jobs") {
				t.Errorf("the --jobs-max-surge message does not name the flag to use: %q", out.String())
			}
		})
	}
}

// TestUpstreamEnvironment: upstream's image variables are ignored, each
// with a warning naming the flag to use.
func TestUpstreamEnvironment(t *testing.T) {
	t.Setenv(UpstreamCRIClientImageEnv, "")
	t.Setenv(UpstreamBusyboxImageEnv, "")
	if w := UpstreamWarnings(); len(w) != 0 {
		t.Errorf("warnings with neither set: %v", w)
	}
	t.Setenv(UpstreamCRIClientImageEnv, "senthilrch/kubefledged-cri-client:v0.10.0")
	t.Setenv(UpstreamBusyboxImageEnv, "senthilrch/busybox:1.35.0")
	w := UpstreamWarnings()
	if len(w) != 2 || !strings.Contains(w[0], "set --cri-image") || !strings.Contains(w[1], "set --helper-image") {
		t.Errorf("warnings %q", w)
	}
	o := New()
	o.Complete()
	if o.CRIImage == "senthilrch/kubefledged-cri-client:v0.10.0" || o.HelperImage == "senthilrch/busybox:1.35.0" {
		t.Errorf("an upstream image was taken: CRI %s, helper %s", o.CRIImage, o.HelperImage)
	}
}
