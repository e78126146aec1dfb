package metrics

import (
	"slices"
	"testing"
)

// The catalog reads every registered metric's name, type, help and labels.
func TestCatalog(t *testing.T) {
	entries, err := Catalog()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Entry{}
	for _, e := range entries {
		if e.Type == "untyped" || e.Help == "" {
			t.Errorf("%s: type %q, help %q", e.Name, e.Type, e.Help)
		}
		byName[e.Name] = e
	}
	for name, want := range map[string]struct {
		typ    string
		labels []string
	}{
		"kubefledged_pulls_total":             {"counter", []string{"result"}},
		"kubefledged_node_warmup_seconds":     {"histogram", []string{"result"}},
		"kubefledged_leader":                  {"gauge", nil},
		"kubefledged_api_requests_total":      {"counter", []string{"verb", "resource"}},
		"kubefledged_api_request_bytes_total": {"counter", []string{"verb", "resource"}},
		"workqueue_depth":                     {"gauge", []string{"name"}},
	} {
		e, ok := byName[name]
		if !ok || e.Type != want.typ || !slices.Equal(e.Labels, want.labels) {
			t.Errorf("%s: %+v, want type %s and labels %v", name, e, want.typ, want.labels)
		}
	}
}
