package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/options"
	"kubefledged.io/kube-fledged/test/framework"
)

// scrapedNames returns the names of the series in a Prometheus text scrape.
func scrapedNames(scrape string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(scrape, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// TestMetricsQueriedAreServed: every metric the alert rules and the Grafana
// dashboard (deploy/monitoring) query is one the controller serves, read
// from a real scrape of the leader once a cache has run; and promtool's
// lint of that scrape finds nothing to say of the project's own metrics.
func TestMetricsQueriedAreServed(t *testing.T) {
	ports, err := framework.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports)
	ns := testNamespace(t, "metrics")
	createNode(t, nodeNames(ns, 1)[0], "pool", ns)
	runController(t, func(o *options.Options) { o.MetricsBindAddress = addr })
	createCache(t, ns, "web", entry(map[string]v1alpha2.LabelValue{"pool": v1alpha2.LabelValue(ns)}, "nginx:1.27"))
	driveToCompletion(t, ns, "web", 20*time.Second)

	var scrape string
	waitFor(t, 10*time.Second, "the leader's per-cache series", func() (bool, error) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		scrape = string(b)
		return err == nil && strings.Contains(scrape, "kubefledged_leader 1") &&
			strings.Contains(scrape, fmt.Sprintf(`kubefledged_imagecache_operation_duration_seconds{name="web",namespace=%q`, ns)), err
	})
	served := scrapedNames(scrape)

	queries, err := framework.DashboardQueries(filepath.Join(projectRoot, "deploy", "monitoring", "kube-fledged-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) < 15 {
		t.Fatalf("the dashboard has %d queries; did its format change?", len(queries))
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(projectRoot, "deploy", "monitoring", "kube-fledged.rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			queries["alert "+r.Alert] = r.Expr
		}
	}
	// up is Prometheus's own, of every target.
	notServed := map[string]bool{"up": true}
	var where []string
	for w := range queries {
		where = append(where, w)
	}
	sort.Strings(where)
	for _, w := range where {
		names := framework.MetricNames(queries[w])
		if len(names) == 0 {
			t.Errorf("%s: no metric found in %q", w, queries[w])
		}
		for _, n := range names {
			if !served[n] && !notServed[n] {
				t.Errorf("%s queries %s, which the controller does not serve", w, n)
			}
		}
	}

	// promtool check metrics: its lint of the project's own metrics.
	ours, out, err := framework.LintMetrics(scrape)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("promtool check metrics on the leader's scrape (%d series names): %d lines about kube-fledged's metrics; all it said:\n%s",
		len(served), len(ours), out)
	if len(ours) > 0 {
		t.Errorf("promtool check metrics on kube-fledged's own metrics:\n%s", strings.Join(ours, "\n"))
	}
}
