// Package app wires the controller: clients, informers, events, and the
// ImageCache controller, from the options.
package app

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	clientset "kubefledged.io/kube-fledged/pkg/client/clientset/versioned"
	fledgedscheme "kubefledged.io/kube-fledged/pkg/client/clientset/versioned/scheme"
	icinformers "kubefledged.io/kube-fledged/pkg/client/informers/externalversions"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache"
	"kubefledged.io/kube-fledged/pkg/options"
	"kubefledged.io/kube-fledged/pkg/puller"
)

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
	return cfg, nil
}

// ControllerConfig turns the options into the controller's configuration.
func ControllerConfig(o *options.Options) imagecache.Config {
	return imagecache.Config{
		Puller: puller.Config{
			HelperImage:        o.HelperImage,
			PullPolicy:         corev1.PullPolicy(o.ImagePullPolicy),
			PullDeadline:       o.ImagePullDeadline,
			ServiceAccountName: o.ServiceAccountName,
			PriorityClassName:  o.JobPriorityClassName,
		},
		ImagesPerJob:     o.ImagesPerJob,
		MaxInFlightJobs:  o.MaxInFlightJobs,
		RefreshFrequency: o.ImageCacheRefreshPeriod,
		RetainJobs:       o.JobRetentionPolicy == options.RetentionRetain,
	}
}

// Run runs the controller until ctx is done.
func Run(ctx context.Context, o *options.Options, cfg *rest.Config) error {
	logger := klog.FromContext(ctx)
	kubeClient, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("building the Kubernetes client: %w", err)
	}
	client, err := clientset.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("building the ImageCache client: %w", err)
	}
	kubeFactory := kubeinformers.NewSharedInformerFactory(kubeClient, resync)
	managedFactory := kubeinformers.NewSharedInformerFactoryWithOptions(kubeClient, resync,
		kubeinformers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = imagecache.ManagedSelector() }))
	icFactory := icinformers.NewSharedInformerFactory(client, resync)

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartStructuredLogging(3)
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kubeClient.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: imagecache.ControllerName})

	ctrl, err := imagecache.New(ctx, ControllerConfig(o), kubeClient, client,
		icFactory.Kubefledged().V1alpha2().ImageCaches(), kubeFactory.Core().V1().Nodes(),
		managedFactory.Batch().V1().Jobs(), managedFactory.Core().V1().Pods(), recorder, clock.RealClock{})
	if err != nil {
		return err
	}
	kubeFactory.Start(ctx.Done())
	managedFactory.Start(ctx.Done())
	icFactory.Start(ctx.Done())
	defer func() {
		kubeFactory.Shutdown()
		managedFactory.Shutdown()
		icFactory.Shutdown()
	}()
	logger.Info("Controller starting", "helperImage", o.HelperImage, "imagesPerJob", o.ImagesPerJob,
		"maxInFlightJobs", o.MaxInFlightJobs, "pullDeadline", o.ImagePullDeadline.String(),
		"refresh", o.ImageCacheRefreshPeriod.String(), "workers", o.Workers)
	start := time.Now()
	err = ctrl.Run(ctx, o.Workers)
	logger.Info("Controller stopped", "ran", time.Since(start).Round(time.Second).String())
	return err
}
