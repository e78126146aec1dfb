package framework

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// promqlWords are PromQL's keywords, which read as names but are none.
var promqlWords = map[string]bool{"and": true, "or": true, "unless": true, "by": true, "without": true, "on": true,
	"ignoring": true, "group_left": true, "group_right": true, "offset": true, "bool": true, "inf": true, "nan": true}

var (
	// What names no metric: strings, label matchers, ranges, Grafana's
	// variables.
	promqlStrings = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promqlBraces  = regexp.MustCompile(`\{[^{}]*\}|\[[^\[\]]*\]|\$\{[^}]*\}|\$\w+`)
	// A grouping clause's label list: by (...), on (...).
	promqlGroups = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promqlTokens = regexp.MustCompile(`[0-9][0-9a-zA-Z.]*|[a-zA-Z_:][a-zA-Z0-9_:]*\s*\(?`)
)

// MetricNames returns the metric names a PromQL expression selects, sorted:
// the names that are not functions, aggregations or keywords, once strings,
// label matchers, ranges, grouping clauses and Grafana's variables are set
// aside. It reads the expressions the project writes; it is no parser.
func MetricNames(expr string) []string {
	expr = promqlStrings.ReplaceAllString(expr, `""`)
	for {
		next := promqlBraces.ReplaceAllString(expr, " ")
		if next == expr {
			break
		}
		expr = next
	}
	expr = promqlGroups.ReplaceAllString(expr, " ")
	seen := map[string]bool{}
	for _, tok := range promqlTokens.FindAllString(expr, -1) {
		tok = strings.TrimSpace(tok)
		if tok[0] >= '0' && tok[0] <= '9' || strings.HasSuffix(tok, "(") || promqlWords[tok] {
			continue
		}
		seen[tok] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// DashboardQueries returns the PromQL expressions of a Grafana dashboard's
// panels (rows' panels too) and template variables, by where they are.
func DashboardQueries(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d struct {
		Panels     []dashboardPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]string{}
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				out[fmt.Sprintf("panel %q query %s", p.Title, t.RefID)] = t.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.*),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		var q struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(v.Query, &q) != nil || q.Query == "" {
			continue
		}
		if m := labelValues.FindStringSubmatch(q.Query); m != nil {
			out["variable "+v.Name] = m[1]
		}
	}
	return out, nil
}

type dashboardPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"`
}

// LintMetrics runs `promtool check metrics` (hack/testbin.sh builds it) on
// a scrape, and returns what it says of the project's own metrics (lines
// that start kubefledged_) and all it printed.
func LintMetrics(scrape string) (own []string, output string, err error) {
	dir, err := BinDir()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(filepath.Join(dir, "promtool"), "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape)
	out, runErr := cmd.CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "kubefledged_") {
			own = append(own, line)
		}
	}
	// promtool exits non-zero on any finding, the Go runtime's metrics'
	// too: only a run that printed nothing it could say is an error.
	var exit *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exit) {
		return own, string(out), fmt.Errorf("running promtool check metrics: %w", runErr)
	}
	return own, string(out), nil
}
