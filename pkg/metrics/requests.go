package metrics

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// APIRequestsTotal counts the controller's requests to the API server by
// Kubernetes verb (get, list, watch, create, update, patch, delete) and
// resource (with its subresource, such as imagecaches/status).
var APIRequestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: namespace, Name: "api_requests_total",
	Help: "Requests to the API server, by verb and resource.",
}, []string{"verb", "resource"})

// APIRequestBytesTotal counts the bytes of the bodies the controller sends
// to the API server, by verb and resource: what its writes cost (a status
// write of a large cache against its ledger's slices, say).
var APIRequestBytesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: namespace, Name: "api_request_bytes_total",
	Help: "Bytes of the request bodies sent to the API server, by verb and resource.",
}, []string{"verb", "resource"})

func init() { Registry.MustRegister(APIRequestsTotal, APIRequestBytesTotal) }

// CountRequests wraps a client transport so that every request is counted in
// APIRequestsTotal, and its body's bytes in APIRequestBytesTotal.
func CountRequests(rt http.RoundTripper) http.RoundTripper {
	return roundTripper{next: rt}
}

type roundTripper struct{ next http.RoundTripper }

func (r roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	verb, resource := classify(req)
	APIRequestsTotal.WithLabelValues(verb, resource).Inc()
	if req.ContentLength > 0 {
		APIRequestBytesTotal.WithLabelValues(verb, resource).Add(float64(req.ContentLength))
	}
	return r.next.RoundTrip(req)
}

// classify turns a request into a Kubernetes verb and resource, from its
// method and path (/api/v1/namespaces/NS/RESOURCE/NAME/SUBRESOURCE or
// /apis/GROUP/VERSION/...).
func classify(req *http.Request) (string, string) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return strings.ToLower(req.Method), "other"
	}
	if len(parts) >= 2 && parts[0] == "namespaces" && len(parts) > 2 {
		parts = parts[2:]
	}
	if len(parts) == 0 {
		return strings.ToLower(req.Method), "other"
	}
	resource, named := parts[0], len(parts) >= 2
	if len(parts) >= 3 {
		resource += "/" + parts[2]
	}
	switch req.Method {
	case http.MethodGet:
		switch {
		case req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1":
			return "watch", resource
		case named:
			return "get", resource
		default:
			return "list", resource
		}
	case http.MethodPost:
		return "create", resource
	case http.MethodPut:
		return "update", resource
	case http.MethodPatch:
		return "patch", resource
	case http.MethodDelete:
		if named {
			return "delete", resource
		}
		return "deletecollection", resource
	}
	return strings.ToLower(req.Method), resource
}
