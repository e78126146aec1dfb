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
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/klog/v2"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	iclisters "kubefledged.io/kube-fledged/pkg/client/listers/kubefledged/v1alpha2"
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

// cacheCollector reports the ImageCaches by status, read at scrape time.
type cacheCollector struct {
	lister iclisters.ImageCacheLister
	desc   *prometheus.Desc
}

func newCacheCollector(l iclisters.ImageCacheLister) *cacheCollector {
	return &cacheCollector{lister: l, desc: prometheus.NewDesc("kubefledged_imagecaches",
		"ImageCaches by the status of their latest operation.", []string{"status"}, nil)}
}

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	for _, s := range []v1alpha2.ImageCacheActionStatus{v1alpha2.ImageCacheActionStatusProcessing, v1alpha2.ImageCacheActionStatusSucceeded,
		v1alpha2.ImageCacheActionStatusFailed, v1alpha2.ImageCacheActionStatusAborted, v1alpha2.ImageCacheActionStatusUnknown} {
		counts[string(s)] = 0
	}
	caches, err := c.lister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ic := range caches {
		s := string(ic.Status.Status)
		if s == "" {
			s = "Pending"
		}
		counts[s]++
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), s)
	}
}
