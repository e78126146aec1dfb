package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// chart draws time to Succeeded against nodes, the controller's and the
// floor's, for the scenarios of one image count (the most common one), as
// an SVG (or PNG, by the file's extension).
func chart(results []Result, path string) error {
	byImages := map[int][]Result{}
	for _, r := range results {
		if r.Seconds > 0 && r.Flags == "" {
			byImages[r.Images] = append(byImages[r.Images], r)
		}
	}
	images, most := 0, 0
	for n, rs := range byImages {
		if len(rs) > most || (len(rs) == most && n < images) {
			images, most = n, len(rs)
		}
	}
	rs := byImages[images]
	if len(rs) < 2 {
		return fmt.Errorf("fewer than two scenarios of %d images: no chart", images)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Nodes < rs[j].Nodes })
	var ours, floor plotter.XYs
	for _, r := range rs {
		ours = append(ours, plotter.XY{X: float64(r.Nodes), Y: r.Seconds})
		if r.FloorSeconds > 0 {
			floor = append(floor, plotter.XY{X: float64(r.Nodes), Y: r.FloorSeconds})
		}
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Time to Succeeded, one ImageCache of %d images", images)
	p.X.Label.Text = "nodes"
	p.Y.Label.Text = "seconds"
	p.X.Min, p.Y.Min = 0, 0
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, true
	for i, line := range []struct {
		name string
		xys  plotter.XYs
	}{{"kube-fledged", ours}, {"floor: its Jobs with no controller, the fastest way", floor}} {
		if len(line.xys) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(line.xys)
		if err != nil {
			return err
		}
		l.Width = vg.Points(1.5)
		l.Color = plotColors[i]
		pts.Color = plotColors[i]
		pts.Shape = draw.CircleGlyph{}
		if i == 1 {
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		p.Add(l, pts)
		p.Legend.Add(line.name, l, pts)
	}
	return p.Save(16*vg.Centimeter, 10*vg.Centimeter, path)
}

var plotColors = []color.Color{color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff}}

// chartFromFile draws the chart from the scenarios of a results.json.
func chartFromFile(from, path string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	var res struct{ Scenarios []Result }
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	if path == "" {
		path = "time-to-succeeded.svg"
	}
	return chart(res.Scenarios, path)
}
