package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/klog/v2"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	iclisters "kubefledged.io/kube-fledged/pkg/client/listers/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache"
	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/pkg/options"
)

type servers struct {
	list []*http.Server
}

// startServers serves /metrics and /healthz, /readyz on their addresses ("0"
// disables one). /readyz is ready once the informer caches have synced;
// /healthz fails when a leader can no longer renew its lease.
func startServers(ctx context.Context, o *options.Options, synced *atomic.Bool, watchdog *leaderelection.HealthzAdaptor) (*servers, error) {
	logger := klog.FromContext(ctx)
	s := &servers{}
	if o.HealthProbeBindAddress != "0" && o.HealthProbeBindAddress != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			if watchdog != nil {
				if err := watchdog.Check(r); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
			}
			_, _ = w.Write([]byte("ok"))
		})
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if !synced.Load() {
				http.Error(w, "informer caches not synced yet", http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("ok"))
		})
		if err := s.serve(logger, "health probes", o.HealthProbeBindAddress, mux); err != nil {
			return nil, err
		}
	}
	if o.MetricsBindAddress != "0" && o.MetricsBindAddress != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{Registry: metrics.Registry}))
		if o.Profiling {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		if err := s.serve(logger, "metrics", o.MetricsBindAddress, mux); err != nil {
			s.shutdown()
			return nil, err
		}
	}
	return s, nil
}

func (s *servers) serve(logger klog.Logger, what, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serving %s on %s: %w", what, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.list = append(s.list, srv)
	logger.Info("Serving", "what", what, "address", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(err, "Server stopped", "what", what)
		}
	}()
	return nil
}

func (s *servers) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range s.list {
		_ = srv.Shutdown(ctx)
	}
}

// cacheCollector reports the ImageCaches, read from the informer at scrape
// time: how many have each status, and per cache its status, its pulls by
// state and when its operation started. Only the leader reports them (every
// replica's informer holds the same caches): with two replicas, a sum over
// both counts each cache once.
type cacheCollector struct {
	lister  iclisters.ImageCacheLister
	leading func() bool
	// slots says each cache's Job slots.
	slots                                     func() map[cache.ObjectName]imagecache.Slots
	byStatus, status, pulls, desired, started *prometheus.Desc
	duration, condition                       *prometheus.Desc
	inFlight, waiting                         *prometheus.Desc
}

func newCacheCollector(l iclisters.ImageCacheLister, leading func() bool, slots func() map[cache.ObjectName]imagecache.Slots) *cacheCollector {
	perCache := []string{"namespace", "name"}
	return &cacheCollector{lister: l, leading: leading, slots: slots,
		inFlight: prometheus.NewDesc("kubefledged_imagecache_jobs_in_flight",
			"Each ImageCache's Jobs whose pod has not finished: its part of --max-in-flight-jobs.", perCache, nil),
		waiting: prometheus.NewDesc("kubefledged_imagecache_waiting_for_slot",
			"1 while an ImageCache waits for a Job slot (--max-in-flight-jobs), else 0.", perCache, nil),
		byStatus: prometheus.NewDesc("kubefledged_imagecaches",
			"ImageCaches by the status of their latest operation (the leader's count).", []string{"status"}, nil),
		status: prometheus.NewDesc("kubefledged_imagecache_status",
			"1 for the status of each ImageCache's latest operation (Pending before the first).", append(perCache, "status"), nil),
		pulls: prometheus.NewDesc("kubefledged_imagecache_pulls",
			"Each ImageCache's (node, image) pulls of its latest operation, by state: pulled, already_present, failed, pending, skipped; they add up to kubefledged_imagecache_pulls_desired.",
			append(perCache, "state"), nil),
		desired: prometheus.NewDesc("kubefledged_imagecache_pulls_desired",
			"Each ImageCache's (node, image) pulls wanted.", perCache, nil),
		started: prometheus.NewDesc("kubefledged_imagecache_operation_start_time_seconds",
			"When each ImageCache's latest operation started (Unix time), by operation.", append(perCache, "operation"), nil),
		condition: prometheus.NewDesc("kubefledged_imagecache_condition",
			"1 for each condition of each ImageCache (Ready, Reconciling, Stalled, Progressing) at its status and reason. Unlike kubefledged_imagecache_status, Ready stays False through the refreshes of a cache that failed, until one succeeds: alert on it.",
			append(perCache, "type", "status", "reason"), nil),
		duration: prometheus.NewDesc("kubefledged_imagecache_operation_duration_seconds",
			"How long each ImageCache's latest operation took from its start to its end, by operation (once it has ended).",
			append(perCache, "operation"), nil),
	}
}

// MetricType says its metrics' type: gauges, all.
func (c *cacheCollector) MetricType() string { return "gauge" }

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.byStatus, c.status, c.pulls, c.desired, c.started, c.duration, c.condition, c.inFlight, c.waiting} {
		ch <- d
	}
}

// cacheStatuses are the statuses kubefledged_imagecaches always reports.
var cacheStatuses = []string{"Pending", string(v1alpha2.ImageCacheActionStatusProcessing), string(v1alpha2.ImageCacheActionStatusSucceeded),
	string(v1alpha2.ImageCacheActionStatusFailed)}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	if !c.leading() {
		return
	}
	counts := map[string]int{}
	for _, s := range cacheStatuses {
		counts[s] = 0
	}
	caches, err := c.lister.List(labels.Everything())
	if err != nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	slots := c.slots()
	for _, ic := range caches {
		s := string(ic.Status.Status)
		if s == "" {
			s = "Pending"
		}
		counts[s]++
		gauge(c.status, 1, ic.Namespace, ic.Name, s)
		p := ic.Status.Pulls
		for state, n := range map[string]int32{"pulled": p.Succeeded - p.AlreadyPresent, "already_present": p.AlreadyPresent,
			"failed": p.Failed, "pending": p.Pending, "skipped": p.Skipped} {
			gauge(c.pulls, float64(n), ic.Namespace, ic.Name, state)
		}
		gauge(c.desired, float64(p.Desired), ic.Namespace, ic.Name)
		for _, cond := range ic.Status.Conditions {
			gauge(c.condition, 1, ic.Namespace, ic.Name, cond.Type, string(cond.Status), cond.Reason)
		}
		if start := ic.Status.StartTime; start != nil {
			gauge(c.started, float64(start.Unix()), ic.Namespace, ic.Name, ic.Status.Reason)
			if end := ic.Status.CompletionTime; end != nil && s != string(v1alpha2.ImageCacheActionStatusProcessing) {
				gauge(c.duration, end.Sub(start.Time).Seconds(), ic.Namespace, ic.Name, ic.Status.Reason)
			}
		}
		sl := slots[cache.ObjectName{Namespace: ic.Namespace, Name: ic.Name}]
		waiting := 0.0
		if sl.Waiting {
			waiting = 1
		}
		gauge(c.inFlight, float64(sl.InUse), ic.Namespace, ic.Name)
		gauge(c.waiting, waiting, ic.Namespace, ic.Name)
	}
	for s, n := range counts {
		gauge(c.byStatus, float64(n), s)
	}
}

// RuntimeCollectors are the metrics registered while the controller runs,
// beyond metrics.Register's: the Job slots in use and their limit, and the
// per-cache series read from the informer at scrape time (only the leader
// serves them). Their functions are called at scrape time only.
func RuntimeCollectors(inFlight func() int, limit int, l iclisters.ImageCacheLister, leading func() bool,
	slots func() map[cache.ObjectName]imagecache.Slots) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "kubefledged", Name: "jobs_in_flight",
			Help: "Pull and delete Jobs whose pod has not finished, as counted against --max-in-flight-jobs."}, func() float64 { return float64(inFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "kubefledged", Name: "jobs_in_flight_limit",
			Help: "--max-in-flight-jobs: the most pull and delete Jobs whose pod has not finished."}, func() float64 { return float64(limit) }),
		newCacheCollector(l, leading, slots),
	}
}
