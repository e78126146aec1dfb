// Package metrics holds kube-fledged's Prometheus metrics: the controller's
// own, the workqueue's (through client-go's metrics provider) and client-go's
// request counts.
package metrics

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	clientmetrics "k8s.io/client-go/tools/metrics"
	"k8s.io/client-go/util/workqueue"

	"kubefledged.io/kube-fledged/pkg/version"
)

const namespace = "kubefledged"

// Warm-up results, the values of the "result" label of NodeWarmupSeconds.
const (
	WarmupWarmed   = "warmed"
	WarmupTimedOut = "timed_out"
)

// Pull results, the values of the "result" label of PullsTotal.
const (
	ResultPulled         = "pulled"
	ResultAlreadyPresent = "already_present"
	ResultFailed         = "failed"
)

// Pin results, the values of the "result" label of PinsTotal.
const (
	PinPinned   = "pinned"
	PinUnpinned = "unpinned"
	PinRefused  = "refused"
)

var (
	// Registry holds every metric the controller serves.
	Registry = prometheus.NewRegistry()

	// PullsTotal counts (node, image) pulls settled, by result.
	PullsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "pulls_total",
		Help: "(node, image) pulls settled, by result: pulled, already_present, failed.",
	}, []string{"result"})

	// PullDuration is the time from a pull Job's creation to an image of it
	// being on the node.
	PullDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "pull_duration_seconds",
		Help:    "Time from a pull Job's creation until one of its images was seen on the node.",
		Buckets: prometheus.ExponentialBuckets(0.5, 2, 12), // 0.5s .. ~17m
	})

	// NodeWarmupSeconds is the time from a node's creation until the
	// controller removed its startup taint.
	NodeWarmupSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "node_warmup_seconds",
		Help:    "Time from a node's creation until its startup taint was removed, by result: warmed, or timed_out (removed at the timeout, pulls pending).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1s .. ~17m
	}, []string{"result"})

	// Leader is 1 while this process leads (and runs the controllers), else 0.
	Leader = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "leader",
		Help: "1 while this replica leads and runs the controllers (it alone serves the per-cache series), else 0.",
	})

	// ImagePullSeconds is the time the kubelet took to pull an image for a
	// pull Job, by result (pulled or failed), from its events.
	ImagePullSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "image_pull_seconds",
		Help: "Time the kubelet took to pull an image for a pull Job, by result: pulled (the time its Pulled event gives) " +
			"or failed (from its Pulling event until the failure was recorded). Best-effort: the kubelet may drop events.",
		Buckets: prometheus.ExponentialBuckets(0.25, 2, 15), // 0.25s .. ~68m
	}, []string{"result"})

	// PulledBytesTotal adds up the sizes of the images the kubelet pulled
	// for pull Jobs.
	PulledBytesTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "image_pulled_bytes_total",
		Help: "Sizes of the images the kubelet pulled for pull Jobs, as its Pulled events give them (best-effort).",
	})

	// PullRetriesTotal counts the failed pulls the controller tries again,
	// by the kubelet's reason.
	PullRetriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "pull_retries_total",
		Help: "(node, image) pulls that failed for a reason that may pass (a registry or network down, slow or busy), to be tried again, by the failure's reason.",
	}, []string{"reason"})

	// OperationsTotal counts the operations that ended, by operation and
	// result.
	OperationsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "imagecache_operations_total",
		Help: "ImageCache operations that ended, by operation (ImageCacheCreate, ImageCacheUpdate, ImageCacheRefresh, ImageCachePurge) and result (Succeeded, Failed).",
	}, []string{"operation", "result"})

	// ImagesGoneTotal counts the cached images found gone from their nodes.
	ImagesGoneTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "image_evictions_total",
		Help: "(node, image) pairs a cache had on the node that were found gone from it (the kubelet's image garbage collection, or someone, removed the image), pulled again at once.",
	})

	// PinsTotal counts the pin and unpin outcomes, by result.
	PinsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "pins_total",
		Help: "(node, image) pins and unpins of caches with spec.pin, by result: pinned, unpinned, refused (over the disk budget, a runtime that cannot pin, a failure).",
	}, []string{"result"})

	// buildInfo says which build runs: always 1.
	buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "The build of kube-fledged that runs: its version, VCS revision and Go version; always 1.",
	}, []string{"version", "revision", "goversion"})

	// JobsCreatedTotal counts the Jobs created.
	JobsCreatedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "jobs_created_total", Help: "Jobs created: pull, delete, pin and unpin.",
	})

	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rest_client_requests_total",
		Help: "Requests to the API server, by status code, method and host.",
	}, []string{"code", "method", "host"})
)

var registerOnce sync.Once

// Register registers the metrics, the workqueue provider and the client-go
// request adapter. Call it before any client or queue exists; it is safe to
// call more than once.
func Register() {
	registerOnce.Do(func() {
		Registry.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			PullsTotal, PullDuration, ImagePullSeconds, PulledBytesTotal, PullRetriesTotal, OperationsTotal, NodeWarmupSeconds, JobsCreatedTotal, requestsTotal,
			ImagesGoneTotal, PinsTotal,
			buildInfo, Leader,
		)
		for _, r := range []string{WarmupWarmed, WarmupTimedOut} {
			NodeWarmupSeconds.WithLabelValues(r)
		}
		for _, r := range []string{ResultPulled, ResultFailed} {
			ImagePullSeconds.WithLabelValues(r)
		}
		for _, r := range []string{PinPinned, PinUnpinned, PinRefused} {
			PinsTotal.WithLabelValues(r)
		}
		v := version.Get()
		buildInfo.WithLabelValues(v.Version, v.Revision, v.GoVersion).Set(1)
		for _, r := range []string{ResultPulled, ResultAlreadyPresent, ResultFailed} {
			PullsTotal.WithLabelValues(r)
		}
		workqueue.SetProvider(queueMetrics{})
		clientmetrics.Register(clientmetrics.RegisterOpts{RequestResult: requestResult{}})
	})
}

// GaugeFunc registers a gauge whose value is read at scrape time.
func GaugeFunc(name, help string, f func() float64) {
	Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, f))
}

// Collector registers a collector.
func Collector(c prometheus.Collector) { Registry.MustRegister(c) }

type requestResult struct{}

func (requestResult) Increment(_ context.Context, code, method, host string) {
	requestsTotal.WithLabelValues(code, method, host).Inc()
}

// --- workqueue metrics, as client-go's provider interface asks ---

var (
	wqDepth = prometheus.NewGaugeVec(prometheus.GaugeOpts{Subsystem: "workqueue", Name: "depth",
		Help: "Current depth of the workqueue."}, []string{"name"})
	wqAdds = prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: "workqueue", Name: "adds_total",
		Help: "Adds handled by the workqueue."}, []string{"name"})
	wqLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Subsystem: "workqueue", Name: "queue_duration_seconds",
		Help: "Seconds an item stays in the workqueue before being requested.", Buckets: prometheus.ExponentialBuckets(1e-6, 10, 10)}, []string{"name"})
	wqWork = prometheus.NewHistogramVec(prometheus.HistogramOpts{Subsystem: "workqueue", Name: "work_duration_seconds",
		Help: "Seconds processing an item from the workqueue takes.", Buckets: prometheus.ExponentialBuckets(1e-6, 10, 10)}, []string{"name"})
	wqUnfinished = prometheus.NewGaugeVec(prometheus.GaugeOpts{Subsystem: "workqueue", Name: "unfinished_work_seconds",
		Help: "Seconds of work in progress not yet observed by work_duration."}, []string{"name"})
	wqLongest = prometheus.NewGaugeVec(prometheus.GaugeOpts{Subsystem: "workqueue", Name: "longest_running_processor_seconds",
		Help: "Seconds the longest running processor has been running."}, []string{"name"})
	wqRetries = prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: "workqueue", Name: "retries_total",
		Help: "Retries handled by the workqueue."}, []string{"name"})
)

func init() {
	Registry.MustRegister(wqDepth, wqAdds, wqLatency, wqWork, wqUnfinished, wqLongest, wqRetries)
}

type queueMetrics struct{}

func (queueMetrics) NewDepthMetric(name string) workqueue.GaugeMetric {
	return wqDepth.WithLabelValues(name)
}
func (queueMetrics) NewAddsMetric(name string) workqueue.CounterMetric {
	return wqAdds.WithLabelValues(name)
}
func (queueMetrics) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return wqLatency.WithLabelValues(name)
}
func (queueMetrics) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return wqWork.WithLabelValues(name)
}
func (queueMetrics) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return wqUnfinished.WithLabelValues(name)
}
func (queueMetrics) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return wqLongest.WithLabelValues(name)
}
func (queueMetrics) NewRetriesMetric(name string) workqueue.CounterMetric {
	return wqRetries.WithLabelValues(name)
}
