package metrics

import (
	"net/http"
	"net/url"
	"strings"
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

type okTransport struct{}

func (okTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
}

// TestCountRequestBytes: a write's body is counted by verb and resource; a
// read, which has none, is not.
func TestCountRequestBytes(t *testing.T) {
	rt := CountRequests(okTransport{})
	before := testutil.ToFloat64(APIRequestBytesTotal.WithLabelValues("update", "imagecacheslices"))
	body := strings.Repeat("x", 1234)
	req, _ := http.NewRequest(http.MethodPut, "https://api/apis/kubefledged.io/v1alpha2/namespaces/a/imagecacheslices/s-0", strings.NewReader(body))
	if _, err := rt.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	get, _ := http.NewRequest(http.MethodGet, "https://api/apis/kubefledged.io/v1alpha2/namespaces/a/imagecacheslices/s-0", nil)
	if _, err := rt.RoundTrip(get); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(APIRequestBytesTotal.WithLabelValues("update", "imagecacheslices")) - before; got != 1234 {
		t.Errorf("counted %v bytes, want 1234", got)
	}
	if got := testutil.ToFloat64(APIRequestBytesTotal.WithLabelValues("get", "imagecacheslices")); got != 0 {
		t.Errorf("a read counted %v bytes", got)
	}
}
