package framework

import (
	"reflect"
	"testing"
)

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (status) (kubefledged_imagecaches{job=~"$job"})`: {"kubefledged_imagecaches"},
		`kubefledged_imagecache_pulls{state="failed"} / ignoring (state) (kubefledged_imagecache_pulls_desired > 0) > 0.1`: {
			"kubefledged_imagecache_pulls", "kubefledged_imagecache_pulls_desired"},
		`histogram_quantile(0.9, sum by (le) (rate(kubefledged_node_warmup_seconds_bucket{result="warmed"}[$__rate_interval])))`: {
			"kubefledged_node_warmup_seconds_bucket"},
		`(time() - kubefledged_imagecache_operation_start_time_seconds) > 3600 and on (namespace, name) up{a="b"} == 1`: {
			"kubefledged_imagecache_operation_start_time_seconds", "up"},
		`kubefledged_build_info * on (instance) group_left kubefledged_leader offset 5m`: {"kubefledged_build_info", "kubefledged_leader"},
		`absent(up{job="x"} == 1)`:                 {"up"},
		`rate(x_total{code=~"429|5.."}[5m]) > 1e3`: {"x_total"},
	} {
		if got := MetricNames(expr); !reflect.DeepEqual(got, want) {
			t.Errorf("MetricNames(%s) = %q, want %q", expr, got, want)
		}
	}
}
