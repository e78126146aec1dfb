package main

import (
	"fmt"
	"strings"

	"kubefledged.io/kube-fledged/pkg/app"
	"kubefledged.io/kube-fledged/pkg/metrics"
)

// metricsPage lists the metrics the controller serves on
// --metrics-bind-address (/metrics), from the code's collectors.
func metricsPage(string) (string, error) {
	entries, err := metrics.Catalog(app.RuntimeCollectors(nil, 0, nil, nil, nil)...)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("# Metrics\n\n")
	b.WriteString("What the controller serves on `--metrics-bind-address` (`/metrics`), read from its collectors. ")
	b.WriteString("The per-cache series (`kubefledged_imagecache*`) come from the leader only, so a sum over replicas counts ")
	b.WriteString("each cache once. Besides these, the Go runtime's (`go_*`) and the process's (`process_*`) metrics of ")
	b.WriteString("the Prometheus client library.\n\n")
	b.WriteString("| Metric | Type | Labels | Description |\n| --- | --- | --- | --- |\n")
	for _, e := range entries {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", code(e.Name), e.Type, cell(strings.Join(e.Labels, ", ")), cell(e.Help))
	}
	return b.String(), nil
}
