package framework

import "testing"

// TestArgoHealthOfOtherStatuses: the Argo CD check on what the real API
// server tests do not make: a cache with no status at all (an API server
// without the CRD's default), statuses an earlier controller wrote (no
// conditions), and a script error.
func TestArgoHealthOfOtherStatuses(t *testing.T) {
	script, err := ArgoHealthScript()
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]any{"name": "web", "generation": 3}
	for _, tc := range []struct {
		name   string
		status map[string]any
		want   string
	}{
		{"no status", nil, "Progressing"},
		{"an older generation observed", map[string]any{"observedGeneration": 2, "status": "Succeeded",
			"conditions": []any{map[string]any{"type": "Ready", "status": "True", "reason": "Cached"}}}, "Progressing"},
		{"an earlier controller's Succeeded", map[string]any{"status": "Succeeded", "message": "done"}, "Healthy"},
		{"an earlier controller's Failed", map[string]any{"status": "Failed"}, "Degraded"},
		{"an earlier controller's Processing", map[string]any{"status": "Processing"}, "Progressing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := map[string]any{"apiVersion": "kubefledged.io/v1alpha2", "kind": "ImageCache", "metadata": meta}
			if tc.status != nil {
				obj["status"] = tc.status
			}
			got, msg, err := ArgoHealth(script, obj)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || msg == "" && tc.status == nil {
				t.Errorf("health %s (%q), want %s", got, msg, tc.want)
			}
		})
	}
	if _, _, err := ArgoHealth(`return { status = "Fine" }`, map[string]any{}); err == nil {
		t.Error("a status Argo CD does not accept was not an error")
	}
	if _, _, err := ArgoHealth(`while true do end`, map[string]any{}); err == nil {
		t.Error("a script that never ends was not stopped")
	}
}
