package metrics

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"kubefledged.io/kube-fledged/pkg/version"
)

func TestClassify(t *testing.T) {
	cases := []struct{ method, url, verb, resource string }{
		{"GET", "/api/v1/nodes?limit=500", "list", "nodes"},
		{"GET", "/api/v1/nodes?watch=true&resourceVersion=1", "watch", "nodes"},
		{"GET", "/api/v1/namespaces/a/pods/p", "get", "pods"},
		{"POST", "/apis/batch/v1/namespaces/a/jobs", "create", "jobs"},
		{"DELETE", "/apis/batch/v1/namespaces/a/jobs/j", "delete", "jobs"},
		{"PATCH", "/apis/batch/v1/namespaces/a/jobs/j", "patch", "jobs"},
		{"PUT", "/apis/kubefledged.io/v1alpha2/namespaces/a/imagecaches/c/status", "update", "imagecaches/status"},
		{"PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-fledged/leases/kube-fledged", "update", "leases"},
		{"POST", "/api/v1/namespaces/a/events", "create", "events"},
		{"GET", "/version", "get", "other"},
	}
	for _, c := range cases {
		u, _ := url.Parse("https://h" + c.url)
		verb, res := classify(&http.Request{Method: c.method, URL: u})
		if verb != c.verb || res != c.resource {
			t.Errorf("%s %s: %s %s, want %s %s", c.method, c.url, verb, res, c.verb, c.resource)
		}
	}
}

// TestBuildInfo: kubefledged_build_info says which build runs, as 1.
func TestBuildInfo(t *testing.T) {
	Register()
	v := version.Get()
	if got := testutil.ToFloat64(buildInfo.WithLabelValues(v.Version, v.Revision, v.GoVersion)); got != 1 {
		t.Errorf("kubefledged_build_info{version=%q,revision=%q,goversion=%q} = %v, want 1", v.Version, v.Revision, v.GoVersion, got)
	}
	families, err := Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "kubefledged_build_info" && len(f.GetMetric()) == 1 {
			return
		}
	}
	t.Error("the registry serves no single kubefledged_build_info series")
}
