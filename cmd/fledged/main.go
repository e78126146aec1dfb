// Command fledged is the kube-fledged controller.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"

	"kubefledged.io/kube-fledged/pkg/app"
	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/pkg/options"
	"kubefledged.io/kube-fledged/pkg/version"
)

func main() {
	o := options.New()
	fs, printVersion := options.NewFlagSet(o)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "fledged: the kube-fledged controller, which caches container images on nodes.\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "fledged: %v\n", err)
		os.Exit(2)
	}
	if *printVersion {
		fmt.Println("fledged " + version.Get().String())
		return
	}
	o.ApplyUpstream(fs)
	o.Complete()
	if err := o.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "fledged: invalid flags:\n%v\n", err)
		os.Exit(2)
	}
	// Logging first, before any goroutine logs: the format, verbosity and
	// flush interval the flags chose.
	if err := logsapi.ValidateAndApply(o.Logs, nil); err != nil {
		fmt.Fprintf(os.Stderr, "fledged: invalid logging flags: %v\n", err)
		os.Exit(2)
	}
	defer logs.FlushLogs()
	v := version.Get()
	klog.InfoS("Starting kube-fledged", "version", v.Version, "revision", v.Revision, "goVersion", v.GoVersion)
	for _, w := range options.UpstreamWarnings() {
		klog.Warning("Deprecated: " + w)
	}
	metrics.Register() // before any client exists: client-go's metrics hooks are set once
	cfg, err := app.RESTConfig(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fledged: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = app.Run(ctx, o, cfg)
	if errors.Is(err, app.ErrLeadershipLost) {
		klog.InfoS("Leadership lost; exiting so that this process comes back as a follower")
		klog.Flush()
		return
	}
	if err != nil {
		klog.ErrorS(err, "Controller failed")
		klog.Flush()
		stop()
		os.Exit(1)
	}
	klog.Flush()
}
