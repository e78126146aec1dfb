//go:build e2e

package e2e

import (
	"strconv"
	"strings"
	"testing"
)

// metricSum is the sum of a metric's samples, whatever their labels (0 for
// none).
func (p *controllerProc) metricSum(t *testing.T, name string) float64 {
	t.Helper()
	body, err := scrapeBody(p.metricsAddr)
	if err != nil {
		t.Fatalf("scraping %s: %v", p.metricsAddr, err)
	}
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) {
			fields := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
			if len(fields) > 0 {
				v, err := strconv.ParseFloat(fields[0], 64)
				if err != nil {
					t.Fatalf("sample %q: %v", line, err)
				}
				sum += v
			}
		}
	}
	return sum
}
