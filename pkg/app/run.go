// Package app wires the controller: clients, informers, events, and the
// ImageCache controller, from the options.
package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	kubeinformers "k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	clientset "kubefledged.io/kube-fledged/pkg/client/clientset/versioned"
	fledgedscheme "kubefledged.io/kube-fledged/pkg/client/clientset/versioned/scheme"
	icinformers "kubefledged.io/kube-fledged/pkg/client/informers/externalversions"
	icinformersv1 "kubefledged.io/kube-fledged/pkg/client/informers/externalversions/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache"
	"kubefledged.io/kube-fledged/pkg/controller/warming"
	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/pkg/options"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/trim"
)

// controllersRunner returns what runs the controllers the leader runs until
// ctx is done: the ImageCache controller, and the node-warming one when a
// startup taint is set.
func controllersRunner(o *options.Options, ctrl *imagecache.Controller, kubeClient kubernetes.Interface,
	icInformer icinformersv1.ImageCacheInformer, sliceInformer icinformersv1.ImageCacheSliceInformer,
	nodeInformer coreinformers.NodeInformer, recorder record.EventRecorder) (func(context.Context) error, error) {
	if o.NodeStartupTaint == "" {
		return func(ctx context.Context) error { return ctrl.Run(ctx, o.Workers) }, nil
	}
	warm, err := warming.New(o.NodeStartupTaint, o.NodeStartupTaintTimeout, ctrl.NodeFilter(), kubeClient, icInformer,
		sliceInformer, nodeInformer, recorder, clock.RealClock{})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		var wg sync.WaitGroup
		var warmErr error
		wg.Go(func() { warmErr = warm.Run(ctx) })
		err := ctrl.Run(ctx, o.Workers)
		wg.Wait()
		return errors.Join(err, warmErr)
	}, nil
}

// resync is the informers' resync period; the controller does not rely on it.
const resync = 0

func init() {
	utilruntime.Must(fledgedscheme.AddToScheme(scheme.Scheme))
}

// RESTConfig builds the client configuration from the options.
func RESTConfig(o *options.Options) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags(o.Master, o.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("building the client configuration: %w", err)
	}
	cfg.QPS = o.KubeAPIQPS
	cfg.Burst = o.KubeAPIBurst
	cfg.UserAgent = "kube-fledged/" + rest.DefaultKubernetesUserAgent()
	cfg.Wrap(metrics.CountRequests)
	return cfg, nil
}

// ControllerConfig turns the options into the controller's configuration.
func ControllerConfig(o *options.Options) imagecache.Config {
	return imagecache.Config{
		Puller: puller.Config{
			HelperImage:              o.HelperImage,
			CRIImage:                 o.CRIImage,
			PullPolicy:               corev1.PullPolicy(o.ImagePullPolicy),
			PullDeadline:             o.ImagePullDeadline,
			StartDeadline:            o.JobStartDeadline,
			ServiceAccountName:       o.ServiceAccountName,
			PriorityClassName:        o.JobPriorityClassName,
			DeleteNamespace:          o.Namespace,
			DeleteServiceAccountName: o.DeleteJobServiceAccountName,
			Tolerations:              JobTolerations(o),
			Resources:                jobResources(o),
			RetryTransient:           o.PullRetryDeadline > 0,
		},
		HelperArchitectures:  o.HelperImageArchitectures,
		ImagesPerJob:         o.ImagesPerJob,
		MaxInFlightJobs:      o.MaxInFlightJobs,
		MaxFinishedJobs:      o.MaxFinishedJobs,
		RefreshFrequency:     o.ImageCacheRefreshPeriod,
		RetainJobs:           o.JobRetentionPolicy == options.RetentionRetain,
		CRISocketPath:        strings.TrimPrefix(o.CRISocketPath, "unix://"),
		DeleteJobHostNetwork: o.DeleteJobHostNetwork,
		NodeStatusMaxImages:  o.NodeStatusMaxImages,
		PullRetryDeadline:    o.PullRetryDeadline,
		PullRetryMaxBackoff:  o.PullRetryMaxBackoff,
		StatusBatchPeriod:    o.StatusBatchPeriod,
		Pinning:              o.ImagePinning,
		NoRemoval:            !o.ImageRemoval,
		PinBudgetPercent:     o.PinBudgetPercent,
		ContainerdRoot:       o.ContainerdRoot,
		UnpinTimeout:         o.UnpinTimeout,
	}
}

// JobTolerations are the pull and delete pods' tolerations: a DaemonSet's,
// the startup taint, and --job-tolerations (validated before).
func JobTolerations(o *options.Options) []corev1.Toleration {
	out := puller.DefaultTolerations()
	if o.NodeStartupTaint != "" {
		out = append(out, corev1.Toleration{Key: o.NodeStartupTaint, Operator: corev1.TolerationOpExists,
			Effect: corev1.TaintEffectNoSchedule})
	}
	more, _ := puller.ParseTolerations(o.JobTolerations)
	return append(out, more...)
}

// jobResources are every pull and delete container's requests and limits
// (validated before).
func jobResources(o *options.Options) corev1.ResourceRequirements {
	requests, _ := puller.ParseResources(o.JobContainerRequests)
	limits, _ := puller.ParseResources(o.JobContainerLimits)
	if requests == nil && limits == nil {
		// Neither: no requests nor limits at all, not the defaults.
		requests = corev1.ResourceList{}
	}
	return corev1.ResourceRequirements{Requests: requests, Limits: limits}
}

// ErrLeadershipLost is returned by Run when this process stopped leading:
// it should exit, and come back as a follower.
var ErrLeadershipLost = errors.New("leadership lost")

// Run runs the controller until ctx is done (or, with leader election, until
// this process loses the lease).
func Run(ctx context.Context, o *options.Options, cfg *rest.Config) error {
	logger := klog.FromContext(ctx)
	metrics.Register()
	tuneRuntime(logger)
	w, err := wire(ctx, o, cfg)
	if err != nil {
		return err
	}
	defer w.broadcaster.Shutdown()
	// leading is true while this process runs the controllers: its
	// metrics say so, and only then serve the per-cache series.
	var leading atomic.Bool
	unregister, err := w.registerMetrics(o, &leading)
	if err != nil {
		return err
	}
	defer unregister()
	synced := w.startInformers(ctx)
	defer w.stopInformers()
	var watchdog *leaderelection.HealthzAdaptor
	if o.LeaderElect {
		watchdog = leaderelection.NewLeaderHealthzAdaptor(o.LeaderElectRenewDeadline + 5*time.Second)
	}
	servers, err := startServers(ctx, o, synced, watchdog)
	if err != nil {
		return err
	}
	defer servers.shutdown()
	logger.Info("Controller starting", "helperImage", o.HelperImage, "imagesPerJob", o.ImagesPerJob,
		"maxInFlightJobs", o.MaxInFlightJobs, "maxFinishedJobs", o.MaxFinishedJobs, "pullDeadline", o.ImagePullDeadline.String(), "startDeadline", o.JobStartDeadline.String(),
		"refresh", o.ImageCacheRefreshPeriod.String(), "workers", o.Workers, "leaderElect", o.LeaderElect)
	run := w.leading(&leading)
	if !o.LeaderElect {
		return run(ctx)
	}
	return lead(ctx, o, w.kube, w.recorder, watchdog, run)
}

// tuneRuntime sets Go's memory limit from the container's, and the
// collector's target when GOGC is unset.
func tuneRuntime(logger klog.Logger) {
	if soft := setMemoryLimit(); soft > 0 {
		logger.Info("Go memory limit set from the container's", "limitBytes", soft)
	}
	if gc := setGCPercent(); gc > 0 {
		logger.V(2).Info("Go collector's target set (GOGC unset)", "percent", gc)
	}
}

// wiring is the controller's parts: its clients, informers, event recorder
// and controllers.
type wiring struct {
	kube                        kubernetes.Interface
	kubeFactory, managedFactory kubeinformers.SharedInformerFactory
	icFactory                   icinformers.SharedInformerFactory
	icInformer                  icinformersv1.ImageCacheInformer
	broadcaster                 record.EventBroadcaster
	recorder                    record.EventRecorder
	ctrl                        *imagecache.Controller
	run                         func(context.Context) error
}

// wire builds the clients, the informers, the event recorder and the
// controllers.
func wire(ctx context.Context, o *options.Options, cfg *rest.Config) (*wiring, error) {
	// client-go's generated clients already ask for core types in protobuf
	// (ImageCaches, a CRD, come as JSON), and list them as a watch stream
	// (WatchListClient), one object at a time through trim.ForCache.
	kubeClient, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the Kubernetes client: %w", err)
	}
	client, err := clientset.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the ImageCache client: %w", err)
	}
	w := &wiring{kube: kubeClient,
		kubeFactory: kubeinformers.NewSharedInformerFactoryWithOptions(kubeClient, resync, kubeinformers.WithTransform(trim.ForCache)),
		managedFactory: kubeinformers.NewSharedInformerFactoryWithOptions(kubeClient, resync,
			kubeinformers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = imagecache.ManagedSelector() }),
			kubeinformers.WithTransform(trim.ForCache)),
		icFactory: icinformers.NewSharedInformerFactoryWithOptions(client, resync, icinformers.WithTransform(trim.ForCache)),
	}
	w.icInformer = w.icFactory.Kubefledged().V1alpha2().ImageCaches()
	w.broadcaster = record.NewBroadcaster(record.WithContext(ctx))
	w.broadcaster.StartStructuredLogging(3)
	w.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kubeClient.CoreV1().Events("")})
	w.recorder = w.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: imagecache.ControllerName})
	nodes := w.kubeFactory.Core().V1().Nodes()
	slices := w.icFactory.Kubefledged().V1alpha2().ImageCacheSlices()
	w.ctrl, err = imagecache.New(ctx, ControllerConfig(o), kubeClient, client, w.icInformer, slices, nodes,
		w.managedFactory.Batch().V1().Jobs(), w.managedFactory.Core().V1().Pods(), pullEventsIn(kubeClient), w.recorder, clock.RealClock{})
	if err == nil {
		w.run, err = controllersRunner(o, w.ctrl, kubeClient, w.icInformer, slices, nodes, w.recorder)
	}
	if err != nil {
		w.broadcaster.Shutdown()
		return nil, err
	}
	return w, nil
}

// pullEventsIn makes the informers of the kubelet's "Pulling" events,
// which show which images a pull pod brought onto its node (those a purge
// may remove), and of its "Pulled" events, which say how long a pull took
// and how large the image is: one informer per reason and namespace that
// holds pull Jobs, made when the controller needs it.
func pullEventsIn(kubeClient kubernetes.Interface) imagecache.EventsIn {
	return func(ns, reason string) cache.SharedIndexInformer {
		return kubeinformers.NewSharedInformerFactoryWithOptions(kubeClient, resync, kubeinformers.WithNamespace(ns),
			kubeinformers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.FieldSelector = imagecache.PullEventsSelector(reason) }),
			kubeinformers.WithTransform(trim.ForCache)).Core().V1().Events().Informer()
	}
}

// registerMetrics registers the collectors that read the controller's
// state, and returns what unregisters them.
func (w *wiring) registerMetrics(o *options.Options, leading *atomic.Bool) (func(), error) {
	var done []prometheus.Collector
	unregister := func() {
		for _, c := range done {
			metrics.Registry.Unregister(c)
		}
	}
	for _, c := range RuntimeCollectors(w.ctrl.InFlightJobs, o.MaxInFlightJobs, w.icInformer.Lister(), leading.Load, w.ctrl.SlotsByCache) {
		if err := metrics.Registry.Register(c); err != nil {
			unregister()
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
		done = append(done, c)
	}
	return unregister, nil
}

// startInformers starts every informer: every replica keeps its caches
// warm, so a new leader starts at once. What it returns turns true once
// they have all synced.
func (w *wiring) startInformers(ctx context.Context) *atomic.Bool {
	w.kubeFactory.Start(ctx.Done())
	w.managedFactory.Start(ctx.Done())
	w.icFactory.Start(ctx.Done())
	var synced atomic.Bool
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), w.kubeFactory.Core().V1().Nodes().Informer().HasSynced,
			w.managedFactory.Batch().V1().Jobs().Informer().HasSynced, w.managedFactory.Core().V1().Pods().Informer().HasSynced,
			w.icInformer.Informer().HasSynced) {
			synced.Store(true)
		}
	}()
	return &synced
}

// stopInformers stops the informers and waits for them.
func (w *wiring) stopInformers() {
	w.kubeFactory.Shutdown()
	w.managedFactory.Shutdown()
	w.icFactory.Shutdown()
}

// leading returns what runs the controllers while this process leads, and
// says so (leading, and the leader metric).
func (w *wiring) leading(leading *atomic.Bool) func(context.Context) error {
	return func(ctx context.Context) error {
		leading.Store(true)
		metrics.Leader.Set(1)
		defer func() {
			leading.Store(false)
			metrics.Leader.Set(0)
		}()
		return w.run(ctx)
	}
}

// lead runs the controllers (run) while this process holds the lease,
// until ctx is done or the lease is lost (ErrLeadershipLost).
func lead(ctx context.Context, o *options.Options, kubeClient kubernetes.Interface, recorder record.EventRecorder,
	watchdog *leaderelection.HealthzAdaptor, run func(context.Context) error) error {
	logger := klog.FromContext(ctx)
	id, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("reading the hostname for the leader election identity: %w", err)
	}
	id += "_" + string(uuid.NewUUID())
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, o.LeaderElectResourceNamespace, o.LeaderElectResourceName,
		kubeClient.CoreV1(), kubeClient.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: id, EventRecorder: recorder})
	if err != nil {
		return fmt.Errorf("building the leader election lock: %w", err)
	}
	var runErr error
	var ran sync.WaitGroup
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		Name:            imagecache.ControllerName,
		LeaseDuration:   o.LeaderElectLeaseDuration,
		RenewDeadline:   o.LeaderElectRenewDeadline,
		RetryPeriod:     o.LeaderElectRetryPeriod,
		ReleaseOnCancel: true,
		WatchDog:        watchdog,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				ran.Add(1)
				defer ran.Done()
				logger.Info("Started leading", "identity", id, "lease", o.LeaderElectResourceNamespace+"/"+o.LeaderElectResourceName)
				runErr = run(lctx)
			},
			OnStoppedLeading: func() { logger.Info("Stopped leading", "identity", id) },
			OnNewLeader: func(identity string) {
				if identity != id {
					logger.Info("Following the leader", "leader", identity)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("building the leader elector: %w", err)
	}
	logger.Info("Waiting to lead", "identity", id, "lease", o.LeaderElectResourceNamespace+"/"+o.LeaderElectResourceName)
	elector.Run(ctx)
	ran.Wait()
	if runErr != nil {
		return runErr
	}
	if ctx.Err() == nil {
		return ErrLeadershipLost
	}
	return nil
}
