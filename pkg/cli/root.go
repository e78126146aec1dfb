// Package cli is kubectl-fledged, the kubectl plugin that reports, node by
// node, what the ImageCaches hold and why not, and asks for their
// operations: `kubectl fledged status|nodes|node|refresh|purge|wait`.
package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	versioned "kubefledged.io/kube-fledged/pkg/client/clientset/versioned"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/version"
)

// DefaultStartupTaint is the taint key the README suggests for
// --node-startup-taint.
const DefaultStartupTaint = "kubefledged.io/warming"

// ExitError ends the command with an exit code of its own.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Exit codes beyond 0 (done: for wait, the cache Ready) and 1 (an error).
const (
	// ExitTimeout: the wait ended at its --timeout.
	ExitTimeout = 2
	// ExitStalled: the operation ended, and the cache is Stalled: it
	// failed, was purged, or is too large; nothing changes until its spec
	// does or it is refreshed.
	ExitStalled = 3
)

// options are the flags every command shares.
type options struct {
	streams       genericiooptions.IOStreams
	config        *genericclioptions.ConfigFlags
	allNamespaces bool
	output        string
	selector      string
	startupTaint  string
	chunkSize     int64

	kube kubernetes.Interface
	ic   versioned.Interface
	// namespace is the namespace of -n or the kubeconfig's context, and
	// explicit says -n was given.
	namespace string
	explicit  bool
	now       func() time.Time
	// reader is the ledger reader of the latest `nodes` (for tests).
	reader *ledger.NodeReader
}

// NewCommand returns kubectl-fledged's root command.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return newCommand(&options{streams: streams, config: genericclioptions.NewConfigFlags(true), now: time.Now})
}

// newCommand builds the commands over options; clients already set in them
// (tests) are kept.
func newCommand(o *options) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubectl-fledged",
		Short: "Which nodes are warm, for which images, and why not",
		Long: `kubectl fledged reports what kube-fledged's ImageCaches hold, cache by cache and
node by node, from their status (the ledger of settled pulls, and the failures),
and asks for their operations.

  kubectl fledged status [NAME]              each cache's operation, pulls and nodes
  kubectl fledged nodes NAME                 one line per node the cache selects
  kubectl fledged node NODE                  every cache's images on one node, and its startup taint
  kubectl fledged refresh|purge NAME         ask for an operation (--wait follows it)
  kubectl fledged wait NAME --for=succeeded  wait for a cache's operation to succeed

Exit codes: 0 done; 1 an error, or a cache whose operation failed; 2 a wait
that reached its --timeout.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Get().Version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.HasParent() && cmd.Parent().Name() == "completion" {
				return nil
			}
			return o.complete()
		},
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl fledged"},
	}
	root.SetIn(o.streams.In)
	root.SetOut(o.streams.Out)
	root.SetErr(o.streams.ErrOut)
	o.config.AddFlags(root.PersistentFlags())
	pf := root.PersistentFlags()
	pf.StringVar(&o.startupTaint, "startup-taint", DefaultStartupTaint,
		"The controller's --node-startup-taint: the taint key that holds joining nodes until they are warm.")
	root.AddCommand(o.statusCommand(), o.nodesCommand(), o.nodeCommand(),
		o.requestCommand(refresh), o.requestCommand(purge), o.waitCommand())
	return root
}

// addOutputFlag adds -o.
func (o *options) addOutputFlag(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "Output format: wide, json (one object per line) or yaml (one document per item). Default: a table.")
}

// addAllNamespacesFlag adds -A.
func (o *options) addAllNamespacesFlag(cmd *cobra.Command) {
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "Look in every namespace.")
}

// addNodeListFlags adds -l and --chunk-size.
func (o *options) addNodeListFlags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.selector, "selector", "l", "", "Only the nodes with these labels (a label selector, as kubectl get -l).")
	cmd.Flags().Int64Var(&o.chunkSize, "chunk-size", 500, "Read the nodes this many at a time, printing each batch as it comes (0: all at once).")
}

// complete makes the clients and finds the namespace.
func (o *options) complete() error {
	switch o.output {
	case "", "wide", "json", "yaml":
	default:
		return fmt.Errorf("unknown output format %q: use wide, json or yaml", o.output)
	}
	var err error
	o.namespace, o.explicit, err = o.config.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return fmt.Errorf("reading the namespace from the kubeconfig: %w", err)
	}
	if o.namespace == "" {
		o.namespace = corev1.NamespaceDefault
	}
	if o.kube != nil { // set by a test
		return nil
	}
	cfg, err := o.config.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("reading the kubeconfig: %w", err)
	}
	cfg.UserAgent = "kubectl-fledged/" + version.Get().Version
	if o.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	o.ic, err = versioned.NewForConfig(cfg)
	return err
}

// filter is the controller's node filter as far as the plugin can know it:
// the pull pods' default tolerations and the startup taint; the helper
// image's architectures are not known, so every architecture counts.
func (o *options) filter() plan.NodeFilter {
	tol := puller.DefaultTolerations()
	if o.startupTaint != "" {
		tol = append(tol, corev1.Toleration{Key: o.startupTaint, Operator: corev1.TolerationOpExists})
	}
	return plan.NodeFilter{Tolerations: tol}
}

// listNamespace is the namespace to list caches in ("" for all).
func (o *options) listNamespace() string {
	if o.allNamespaces {
		return ""
	}
	return o.namespace
}

// Run runs kubectl-fledged with arguments and returns its exit code.
func Run(ctx context.Context, streams genericiooptions.IOStreams, args []string) int {
	return run(ctx, NewCommand(streams), streams, args)
}

func run(ctx context.Context, cmd *cobra.Command, streams genericiooptions.IOStreams, args []string) int {
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(streams.ErrOut, "error:", err)
	var exit *ExitError
	if errors.As(err, &exit) {
		return exit.Code
	}
	return 1
}
