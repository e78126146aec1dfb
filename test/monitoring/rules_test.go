// Package monitoring tests the project's alert rules and Grafana dashboard
// (deploy/monitoring) with promtool, built by hack/testbin.sh from the
// Prometheus module.
package monitoring

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"kubefledged.io/kube-fledged/test/framework"
)

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

type ruleTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `json:"alertname"`
			ExpAlerts []any  `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

func promtool(t *testing.T) string {
	t.Helper()
	dir, err := framework.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "promtool")
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestAlertRules: promtool finds the rules file sound, and its unit tests
// (rules.test.yaml) pass; each alert has a summary, a description, a
// severity and a runbook section in docs/runbooks.md, and a test where it
// fires and one where it stays quiet.
func TestAlertRules(t *testing.T) {
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	rulesPath := filepath.Join(root, "deploy", "monitoring", "kube-fledged.rules.yaml")
	bin := promtool(t)
	out, err := exec.Command(bin, "check", "rules", "--lint=all", "--lint-fatal", rulesPath).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "test", "rules", "rules.test.yaml")
	out, err = cmd.CombinedOutput()
	t.Logf("promtool test rules rules.test.yaml:\n%s", out)
	if err != nil {
		t.Fatalf("promtool test rules: %v", err)
	}

	var rules ruleFile
	readYAML(t, rulesPath, &rules)
	var tests ruleTests
	readYAML(t, "rules.test.yaml", &tests)
	fires, quiet := map[string]int{}, map[string]int{}
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertRuleTest {
			if len(at.ExpAlerts) > 0 {
				fires[at.Alertname]++
			} else {
				quiet[at.Alertname]++
			}
		}
	}
	runbooks, err := os.ReadFile(filepath.Join(root, "docs", "runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if fires[r.Alert] == 0 || quiet[r.Alert] == 0 {
				t.Errorf("%s: %d tests where it fires and %d where it stays quiet; want at least one of each", r.Alert, fires[r.Alert], quiet[r.Alert])
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s has no %s", r.Alert, a)
				}
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			anchor := strings.ToLower(r.Alert)
			if !strings.HasSuffix(r.Annotations["runbook_url"], "/docs/runbooks.md#"+anchor) {
				t.Errorf("%s: runbook_url %q does not point at docs/runbooks.md#%s", r.Alert, r.Annotations["runbook_url"], anchor)
			}
			if !strings.Contains(string(runbooks), "\n## "+r.Alert+"\n") {
				t.Errorf("docs/runbooks.md has no section \"## %s\"", r.Alert)
			}
		}
	}
	if alerts < 10 {
		t.Errorf("%d alerts, want the 10 the project documents", alerts)
	}
}
