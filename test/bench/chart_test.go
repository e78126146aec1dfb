package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChartDrawsTheGrid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chart.svg")
	results := []Result{
		{Nodes: 10, Images: 10, Seconds: 1, FloorSeconds: 1.5},
		{Nodes: 100, Images: 10, Seconds: 8, FloorSeconds: 5},
		{Nodes: 1000, Images: 10, Seconds: 80, FloorSeconds: 60},
		{Nodes: 100, Images: 100, Seconds: 82, FloorSeconds: 54},
	}
	if err := chart(results, path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	svg := string(data)
	for _, want := range []string{"<svg", "kube-fledged", "floor", "10 images"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the chart has no %q", want)
		}
	}
	if err := chart(results[3:], filepath.Join(t.TempDir(), "one.svg")); err == nil {
		t.Error("a chart of one scenario was drawn")
	}
}
