package metrics

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Entry describes one metric the controller serves.
type Entry struct {
	Name, Type, Help string
	Labels           []string
}

// Typed is a collector of its own kind that says its metrics' type.
type Typed interface {
	MetricType() string
}

// Catalog describes the metrics Register registers (but the Go runtime's
// and the process's) and those of extra, in name order: for the reference
// page, which make verify keeps in step with the code.
func Catalog(extra ...prometheus.Collector) ([]Entry, error) {
	all := append([]prometheus.Collector{
		PullsTotal, PullDuration, ImagePullSeconds, PulledBytesTotal, PullRetriesTotal, OperationsTotal, NodeWarmupSeconds, JobsCreatedTotal,
		requestsTotal, ImagesGoneTotal, PinsTotal, buildInfo, Leader, APIRequestsTotal, APIRequestBytesTotal,
		wqDepth, wqAdds, wqLatency, wqWork, wqUnfinished, wqLongest, wqRetries,
	}, extra...)
	var out []Entry
	for _, c := range all {
		ch := make(chan *prometheus.Desc)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			e, err := parseDesc(d)
			if err != nil {
				return nil, err
			}
			e.Type = typeOf(c)
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func typeOf(c prometheus.Collector) string {
	switch c := c.(type) {
	case Typed:
		return c.MetricType()
	case prometheus.Histogram, *prometheus.HistogramVec:
		return "histogram"
	case prometheus.Gauge, *prometheus.GaugeVec: // before Counter: a Gauge has a Counter's methods too
		return "gauge"
	case prometheus.Counter, *prometheus.CounterVec:
		return "counter"
	case prometheus.GaugeFunc:
		return "gauge"
	}
	return "untyped"
}

// descPattern reads what prometheus.Desc's String says (its fields are not
// exported).
var descPattern = regexp.MustCompile(`^Desc\{fqName: "([^"]*)", help: "((?:[^"\\]|\\.)*)", (?:unit: "[^"]*", )?constLabels: \{([^}]*)\}, variableLabels: \{([^}]*)\}\}$`)

func parseDesc(d *prometheus.Desc) (Entry, error) {
	m := descPattern.FindStringSubmatch(d.String())
	if m == nil {
		return Entry{}, fmt.Errorf("cannot read the metric description %s", d)
	}
	e := Entry{Name: m[1], Help: strings.ReplaceAll(m[2], `\"`, `"`)}
	if m[4] != "" {
		e.Labels = strings.Split(m[4], ",")
	}
	return e, nil
}
