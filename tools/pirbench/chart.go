package main

import (
	"image/color"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// The charts are drawn by gonum.org/v1/plot as SVG: a line per measure
// across the sizes measured, the x axis the number of hosts on a log
// scale. The axes' ranges and ticks are chosen here (yTicks), so that a
// log axis never meets a value it cannot place (gonum panics on one) and
// the ticks are round numbers with units.

// palette is the Okabe-Ito palette, told apart by colour-blind readers too.
var palette = []color.RGBA{
	{0x00, 0x72, 0xB2, 0xff}, {0xE6, 0x9F, 0x00, 0xff}, {0x00, 0x9E, 0x73, 0xff},
	{0xD5, 0x5E, 0x00, 0xff}, {0xCC, 0x79, 0xA7, 0xff}, {0x56, 0xB4, 0xE9, 0xff},
}

var (
	gridMajor = color.Gray{0xdd}
	gridMinor = color.Gray{0xf0}
	dashes    = []vg.Length{vg.Points(6), vg.Points(4)}
)

// writeTimesChart draws the medians (dots, joined by lines) and p99s (bars
// above the dots) of the time measurements against the number of hosts, on
// a logarithmic time axis.
func writeTimesChart(w io.Writer, sizes []sizeResult, note string) error {
	return writeSVG(w, 640, 380, func(dc draw.Canvas) { drawTimes(dc, sizes, note) })
}

func drawTimes(dc draw.Canvas, sizes []sizeResult, note string) {
	sizes = sortedSizes(sizes)
	body := heading(dc, "pir: how long until every member knows, by number of hosts", note)

	p := newPlot("hosts in the LAN (log scale)", "time until the last member knows")
	p.Y.Label.Position = draw.PosTop // centred, it would shorten the axis to its length
	var all []float64
	var ss []series
	for i, m := range measurements {
		s := series{name: m.name, color: palette[i%len(palette)], shift: float64(i - len(measurements)/2)}
		for _, sz := range sizes {
			for _, x := range sz.Times {
				if x.Name == m.name && x.N > 0 {
					s.points = append(s.points, point{float64(sz.Hosts), msOf(x.Median), msOf(x.P99)})
					all = append(all, msOf(x.Median), msOf(x.P99))
				}
			}
		}
		ss = append(ss, s)
	}
	setXAxis(p, hostsOf(sizes))
	setYAxis(p, all, true, msLabel)
	legend := newLegend(10)
	for _, s := range ss {
		legend.Add(s.name, s.add(p, true)...)
	}
	noData(p, len(sizes) == 0)

	// The plot on the left; on the right the legend, and what dots and
	// bars mean.
	right := vg.Points(170)
	p.Draw(draw.Crop(body, 0, -right, 0, 0))
	side := draw.Crop(body, body.Size().X-right+vg.Points(12), 0, 0, -vg.Points(10))
	legend.Draw(side)
	y := side.Max.Y - legend.Rectangle(side).Size().Y - vg.Points(18)
	for _, l := range []string{"dot: median of the runs", "bar: up to the p99"} {
		side.FillText(textStyle(9, false, draw.XLeft), vg.Point{X: side.Min.X, Y: y}, l)
		y -= vg.Points(13)
	}
}

// writeSteadyChart draws four panels against the number of hosts: packets
// per second and bytes per second per host, sent and received; CPU and
// resident memory per host. Solid lines are the median member, dashed the
// busiest (the maximum).
func writeSteadyChart(w io.Writer, sizes []sizeResult, note string) error {
	return writeSVG(w, 700, 540, func(dc draw.Canvas) { drawSteady(dc, sizes, note) })
}

func drawSteady(dc draw.Canvas, sizes []sizeResult, note string) {
	sizes = sortedSizes(sizes)
	body := heading(dc, "pir at steady state: cost per host, by number of hosts", note)
	body.FillText(textStyle(9, false, draw.XCenter), vg.Point{X: body.Center().X, Y: body.Min.Y + vg.Points(6)},
		"median: the median member; max: the busiest one; over every member of every run. Packets and bytes: Ethernet frames on the host's eth0.")
	body = draw.Crop(body, 0, 0, vg.Points(22), 0)

	type line struct {
		name    string
		color   color.RGBA
		measure string
		scale   float64
	}
	panels := []struct {
		title, ylabel string
		lines         []line
	}{
		{"Packets per second per host", "packets/s", []line{
			{"sent", palette[0], sTxPackets, 1}, {"received", palette[1], sRxPackets, 1}}},
		{"Bytes per second per host", "kB/s", []line{
			{"sent", palette[0], sTxBytes, 1e-3}, {"received", palette[1], sRxBytes, 1e-3}}},
		{"CPU per host", "% of one core", []line{{"pir process", palette[2], sCPU, 1}}},
		{"Resident memory per host", "MiB (VmRSS)", []line{{"pir process", palette[4], sRSS, 1}}},
	}
	tiles := draw.Tiles{Rows: 2, Cols: 2, PadX: vg.Points(24), PadY: vg.Points(18), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	for i, pn := range panels {
		p := newPlot("hosts in the LAN (log scale)", pn.ylabel)
		setXAxis(p, hostsOf(sizes))
		var all []float64
		var pairs [][2]series // a median and a max for each line
		for _, l := range pn.lines {
			med := series{name: l.name + ", median", color: l.color}
			top := series{name: l.name + ", max", color: l.color, dashed: true}
			for _, sz := range sizes {
				for _, x := range sz.Steady {
					if x.Name == l.measure && x.N > 0 {
						med.points = append(med.points, point{x: float64(sz.Hosts), y: x.Median * l.scale})
						top.points = append(top.points, point{x: float64(sz.Hosts), y: x.Max * l.scale})
						all = append(all, x.Median*l.scale, x.Max*l.scale)
					}
				}
			}
			pairs = append(pairs, [2]series{med, top})
		}
		setYAxis(p, all, false, numLabel)
		var legends []plot.Legend // a column for each line
		for _, pair := range pairs {
			legend := newLegend(9)
			for _, s := range pair {
				legend.Add(s.name, s.add(p, false)...)
			}
			legends = append(legends, legend)
		}
		noData(p, len(sizes) == 0)

		// The panel's title, its legend under it, then the plot.
		tile := tiles.At(body, i%2, i/2)
		tile.FillText(textStyle(12, true, draw.XCenter), vg.Point{X: tile.Center().X, Y: tile.Max.Y - vg.Points(12)}, pn.title)
		under := draw.Crop(tile, vg.Points(50), 0, 0, -vg.Points(20))
		var h vg.Length
		for j, l := range legends {
			l.Draw(draw.Crop(under, vg.Points(130*float64(j)), 0, 0, 0))
			h = max(h, l.Rectangle(under).Size().Y)
		}
		p.Draw(draw.Crop(tile, 0, 0, 0, -h-vg.Points(28)))
	}
}

// writeSVG writes an SVG picture of width × height points, white, drawn
// by paint. Its text is in a sans-serif font: gonum measures text with
// Liberation Sans, whose metrics are Arial's, and names only that one.
func writeSVG(w io.Writer, width, height float64, paint func(draw.Canvas)) error {
	c := vgsvg.New(vg.Points(width), vg.Points(height))
	paint(whiteCanvas(c))
	var b strings.Builder
	if _, err := c.WriteTo(&b); err != nil {
		return err
	}
	_, err := io.WriteString(w, strings.ReplaceAll(b.String(), "font-family:Liberation Sans;", "font-family:Liberation Sans,Arial,Helvetica,sans-serif;"))
	return err
}

// whiteCanvas returns the whole of c, painted white.
func whiteCanvas(c vg.CanvasSizer) draw.Canvas {
	dc := draw.New(c)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	return dc
}

// heading writes a chart's title and note at the top of dc and returns the
// rest of it.
func heading(dc draw.Canvas, title, note string) draw.Canvas {
	x := dc.Center().X
	dc.FillText(textStyle(14, true, draw.XCenter), vg.Point{X: x, Y: dc.Max.Y - vg.Points(22)}, title)
	dc.FillText(textStyle(9, false, draw.XCenter), vg.Point{X: x, Y: dc.Max.Y - vg.Points(38)}, note)
	return draw.Crop(dc, vg.Points(8), -vg.Points(8), vg.Points(6), -vg.Points(50))
}

func textStyle(size float64, bold bool, align draw.XAlignment) draw.TextStyle {
	sty := draw.TextStyle{Color: color.Black, XAlign: align, YAlign: draw.YBottom, Handler: plot.DefaultTextHandler}
	sans(&sty.Font, size)
	if bold {
		sty.Font.Weight = xfont.WeightBold
	}
	return sty
}

// sans sets f to Liberation Sans of size points.
func sans(f *font.Font, size float64) {
	*f = font.From(font.Font{Typeface: "Liberation", Variant: "Sans"}, font.Length(size))
}

// newLegend returns a legend for the top left of a canvas.
func newLegend(size float64) plot.Legend {
	l := plot.NewLegend()
	sans(&l.TextStyle.Font, size)
	l.Top, l.Left = true, true
	l.Padding = vg.Points(3)
	return l
}

// newPlot returns a plot with sans-serif text and no padding inside its
// axes (setXAxis and setYAxis leave the room).
func newPlot(xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	p.X.Label.Text, p.Y.Label.Text = xlabel, ylabel
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		sans(&a.Label.TextStyle.Font, 10)
		sans(&a.Tick.Label.Font, 9)
	}
	p.X.Padding, p.Y.Padding = 0, 0
	return p
}

// setXAxis puts the sizes on a log scale with some room at both ends, a
// labelled tick at each.
func setXAxis(p *plot.Plot, xs []float64) {
	p.X.Scale = plot.LogScale{}
	if len(xs) == 0 {
		xs = []float64{10}
	}
	p.X.Min, p.X.Max = xs[0]/1.2, xs[len(xs)-1]*1.2
	var ticks plot.ConstantTicks
	for _, x := range xs {
		ticks = append(ticks, plot.Tick{Value: x, Label: strconv.FormatFloat(x, 'f', -1, 64)})
	}
	p.X.Tick.Marker = ticks
}

// setYAxis sets the y axis to cover vals, with yTicks' ticks labelled by
// format and grid lines at each (and, on a log scale, faint ones at 2 and 5
// times each power of ten).
func setYAxis(p *plot.Plot, vals []float64, log bool, format func(float64) string) {
	lo, hi, ticks := yTicks(vals, log)
	p.Y.Min, p.Y.Max = lo, hi
	var marks plot.ConstantTicks
	var minor []float64
	for i, t := range ticks {
		marks = append(marks, plot.Tick{Value: t, Label: format(t)})
		if log && i < len(ticks)-1 {
			minor = append(minor, 2*t, 5*t)
		}
	}
	p.Y.Tick.Marker = marks
	if log {
		p.Y.Scale = plot.LogScale{}
		p.Add(hlines(minor, gridMinor))
	}
	p.Add(hlines(ticks, gridMajor))
}

// hlines is a plotter of horizontal lines across the plot at ys.
func hlines(ys []float64, c color.Color) plot.Plotter {
	return plotFunc(func(dc draw.Canvas, p *plot.Plot) {
		_, trY := p.Transforms(&dc)
		sty := draw.LineStyle{Color: c, Width: vg.Points(0.75)}
		for _, y := range ys {
			dc.StrokeLine2(sty, dc.Min.X, trY(y), dc.Max.X, trY(y))
		}
	})
}

// plotFunc is a plot.Plotter that is a function.
type plotFunc func(draw.Canvas, *plot.Plot)

func (f plotFunc) Plot(dc draw.Canvas, p *plot.Plot) { f(dc, p) }

// noData writes "no data" in the middle of an empty plot.
func noData(p *plot.Plot, empty bool) {
	if !empty {
		return
	}
	p.Add(plotFunc(func(dc draw.Canvas, _ *plot.Plot) {
		dc.FillText(textStyle(11, false, draw.XCenter), dc.Center(), "no data")
	}))
}

// point is one value of a series: y at x hosts, with hi (when above y) the
// top of a bar.
type point struct{ x, y, hi float64 }

type series struct {
	name   string
	color  color.RGBA
	dashed bool
	shift  float64 // moves the series right by so many 1.5 % steps of x, so that bars do not overlap
	points []point
}

// add adds the series to p: its line (when it has two points or more),
// its dots (hollow when dashed) and its bars. It returns what the legend
// shows for it. Points a log axis cannot place are left out.
func (s series) add(p *plot.Plot, ylog bool) []plot.Thumbnailer {
	var xys plotter.XYs
	var bars plotter.YErrors
	for _, pt := range s.points {
		if (ylog && pt.y <= 0) || !finite(pt.y) || !finite(pt.hi) {
			continue
		}
		xys = append(xys, plotter.XY{X: pt.x * math.Pow(1.015, s.shift), Y: pt.y})
		bars = append(bars, struct{ Low, High float64 }{0, max(0, pt.hi-pt.y)})
	}
	lineStyle := draw.LineStyle{Color: s.color, Width: vg.Points(1.5)}
	glyph := draw.GlyphStyle{Color: s.color, Radius: vg.Points(2.6), Shape: draw.CircleGlyph{}}
	if s.dashed {
		lineStyle.Dashes = dashes
		glyph.Shape = draw.RingGlyph{}
	}
	line := &plotter.Line{LineStyle: lineStyle}
	dots := &plotter.Scatter{GlyphStyle: glyph}
	thumbs := []plot.Thumbnailer{line, dots}
	if len(xys) == 0 {
		return thumbs
	}
	dots.XYs = xys
	if len(xys) > 1 {
		line.XYs = xys
		p.Add(line)
	}
	p.Add(dots)
	if slices.ContainsFunc(bars, func(e struct{ Low, High float64 }) bool { return e.High > 0 }) {
		p.Add(&plotter.YErrorBars{XYs: xys, YErrors: bars, LineStyle: draw.LineStyle{Color: s.color, Width: vg.Points(1.1)}, CapWidth: vg.Points(5)})
	}
	return thumbs
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func sortedSizes(sizes []sizeResult) []sizeResult {
	return slices.SortedFunc(slices.Values(sizes), func(a, b sizeResult) int { return a.Hosts - b.Hosts })
}

func hostsOf(sizes []sizeResult) []float64 {
	var xs []float64
	for _, s := range sizes {
		if len(xs) == 0 || xs[len(xs)-1] != float64(s.Hosts) {
			xs = append(xs, float64(s.Hosts))
		}
	}
	return xs
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// msLabel labels a time axis tick given in milliseconds.
func msLabel(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(v/1000, 'g', 4, 64) + " s"
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + " ms"
}

func numLabel(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// yTicks returns a y axis range covering vals, and its ticks: powers of
// ten on a log scale (at least a decade, only positive values counted);
// 0 to a round maximum in four or five steps on a linear one.
func yTicks(vals []float64, log bool) (lo, hi float64, ticks []float64) {
	if log {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range vals {
			if v > 0 && finite(v) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
		if math.IsInf(lo, 1) {
			lo, hi = 1, 10
		}
		e0, e1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		if e1 <= e0 {
			e1 = e0 + 1
		}
		for e := e0; e <= e1; e++ {
			ticks = append(ticks, math.Pow(10, e))
		}
		return ticks[0], ticks[len(ticks)-1], ticks
	}
	top := 0.0
	for _, v := range vals {
		if finite(v) {
			top = max(top, v)
		}
	}
	step := niceStep(top / 4)
	for i := 0; ; i++ {
		t := float64(i) * step
		ticks = append(ticks, roundTo(t, step))
		if t >= top*(1-1e-9) && i >= 1 {
			break
		}
	}
	return 0, ticks[len(ticks)-1], ticks
}

// niceStep returns the smallest of 1, 2 or 5 times a power of ten that is
// at least v (1 for v ≤ 0).
func niceStep(v float64) float64 {
	if v <= 0 || !finite(v) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// roundTo rounds t to the decimals step has, so that 0.1 × 3 prints 0.3.
func roundTo(t, step float64) float64 {
	d := max(0, -math.Floor(math.Log10(step)))
	f := math.Pow(10, d)
	return math.Round(t*f) / f
}
