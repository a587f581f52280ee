package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The charts are plain SVG written by hand: a line per measure across the
// sizes measured, the x axis the number of hosts on a log scale.

// palette is the Okabe-Ito palette, told apart by colour-blind readers too.
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9"}

// writeTimesChart draws the medians (dots, joined by lines) and p99s (bars
// above the dots) of the time measurements against the number of hosts, on
// a logarithmic time axis.
func writeTimesChart(w io.Writer, sizes []sizeResult, note string) error {
	sizes = sortedSizes(sizes)
	const width, height = 820, 500
	c := newSVG(width, height, "pir: how long until every member knows")
	c.heading(width, "pir: how long until every member knows, by number of hosts", note)
	p := panel{
		x: 90, y: 80, w: 500, h: 340,
		xs: hostsOf(sizes), ylog: true,
		ylabel: "time until the last member knows (log scale)",
		xlabel: "hosts in the LAN (log scale)",
		yfmt:   msLabel,
	}
	for i, m := range measurements {
		s := series{name: m.name, color: palette[i%len(palette)], offset: float64(i-len(measurements)/2) * 4}
		for _, sz := range sizes {
			for _, x := range sz.Times {
				if x.Name == m.name && x.N > 0 {
					s.points = append(s.points, point{float64(sz.Hosts), msOf(x.Median), msOf(x.P99)})
				}
			}
		}
		p.series = append(p.series, s)
	}
	c.panel(p)
	// The legend, right of the plot.
	lx, ly := 620.0, 100.0
	for i, s := range p.series {
		y := ly + float64(i)*24
		c.line(lx, y, lx+28, y, s.color, 2, false)
		c.circle(lx+14, y, 3.5, s.color)
		c.text(lx+36, y+4, "start", 13, "", s.name)
	}
	y := ly + float64(len(p.series))*24 + 16
	c.text(lx, y, "start", 12, "", "dot: median of the runs")
	c.text(lx, y+18, "start", 12, "", "bar: up to the p99")
	return c.end(w)
}

// writeSteadyChart draws four panels against the number of hosts: packets
// per second and bytes per second per host, sent and received; CPU and
// resident memory per host. Solid lines are the median member, dashed the
// busiest (the maximum).
func writeSteadyChart(w io.Writer, sizes []sizeResult, note string) error {
	sizes = sortedSizes(sizes)
	const width, height = 940, 720
	c := newSVG(width, height, "pir at steady state: cost per host")
	c.heading(width, "pir at steady state: cost per host, by number of hosts", note)
	type line struct {
		name, color string
		measure     string
		scale       float64
	}
	panels := []struct {
		title, ylabel string
		yfmt          func(float64) string
		lines         []line
	}{
		{"Packets per second per host", "packets/s", numLabel, []line{
			{"sent", palette[0], sTxPackets, 1}, {"received", palette[1], sRxPackets, 1}}},
		{"Bytes per second per host", "kB/s", numLabel, []line{
			{"sent", palette[0], sTxBytes, 1e-3}, {"received", palette[1], sRxBytes, 1e-3}}},
		{"CPU per host", "% of one core", numLabel, []line{{"pir process", palette[2], sCPU, 1}}},
		{"Resident memory per host", "MiB (VmRSS)", numLabel, []line{{"pir process", palette[4], sRSS, 1}}},
	}
	const cellW, cellH, top = 470.0, 320.0, 70.0
	for i, pn := range panels {
		cx, cy := float64(i%2)*cellW, top+float64(i/2)*cellH
		p := panel{
			x: cx + 85, y: cy + 62, w: cellW - 125, h: cellH - 130,
			xs: hostsOf(sizes), ylabel: pn.ylabel, xlabel: "hosts in the LAN (log scale)", yfmt: pn.yfmt,
		}
		for _, l := range pn.lines {
			med := series{name: l.name + ", median", color: l.color}
			top := series{name: l.name + ", max", color: l.color, dashed: true}
			for _, sz := range sizes {
				for _, x := range sz.Steady {
					if x.Name == l.measure && x.N > 0 {
						med.points = append(med.points, point{x: float64(sz.Hosts), y: x.Median * l.scale})
						top.points = append(top.points, point{x: float64(sz.Hosts), y: x.Max * l.scale})
					}
				}
			}
			p.series = append(p.series, med, top)
		}
		c.text(cx+cellW/2, cy+24, "middle", 15, "bold", pn.title)
		// The legend, under the panel's title: a colour for each line,
		// then what solid and dashed mean.
		lx := cx + 85
		for _, l := range pn.lines {
			c.line(lx, cy+42, lx+18, cy+42, l.color, 3, false)
			c.text(lx+23, cy+46, "start", 12, "", l.name)
			lx += 36 + 6.5*float64(len(l.name))
		}
		c.line(lx, cy+42, lx+22, cy+42, "#555", 2, false)
		c.circle(lx+11, cy+42, 3, "#555")
		c.text(lx+27, cy+46, "start", 12, "", "median")
		lx += 80
		c.line(lx, cy+42, lx+22, cy+42, "#555", 2, true)
		c.text(lx+27, cy+46, "start", 12, "", "max")
		c.panel(p)
	}
	c.text(width/2, height-12, "middle", 12, "", "median: the median member; max: the busiest one; over every member of every run. Packets and bytes: Ethernet frames on the host's eth0.")
	return c.end(w)
}

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

// point is one value of a series: y at x hosts, with hi (when above y) the
// top of a bar.
type point struct{ x, y, hi float64 }

type series struct {
	name   string
	color  string
	dashed bool
	offset float64 // shifts the series right by so many pixels, so that bars do not overlap
	points []point
}

// panel is one plot: its area in pixels, its axes and its series.
type panel struct {
	x, y, w, h     float64
	xs             []float64 // the x ticks: the sizes measured
	ylog           bool
	xlabel, ylabel string
	yfmt           func(float64) string
	series         []series
}

// scale maps values to pixels, linearly or on a log scale.
type scale struct {
	lo, hi float64 // values
	a, b   float64 // pixels
	log    bool
}

func (s scale) pos(v float64) float64 {
	lo, hi := s.lo, s.hi
	if s.log {
		v, lo, hi = math.Log(v), math.Log(lo), math.Log(hi)
	}
	if hi == lo {
		return (s.a + s.b) / 2
	}
	return s.a + (v-lo)/(hi-lo)*(s.b-s.a)
}

// panel draws a panel's frame, grid, ticks, labels and series.
func (c *svg) panel(p panel) {
	c.rect(p.x, p.y, p.w, p.h)
	if len(p.xs) == 0 {
		c.text(p.x+p.w/2, p.y+p.h/2, "middle", 13, "", "no data")
		return
	}
	// x: the sizes, on a log scale with some room at both ends.
	xs := scale{lo: p.xs[0] / 1.2, hi: p.xs[len(p.xs)-1] * 1.2, a: p.x, b: p.x + p.w, log: true}
	if len(p.xs) == 1 {
		xs.lo, xs.hi = p.xs[0], p.xs[0]
	}
	for _, x := range p.xs {
		px := xs.pos(x)
		c.line(px, p.y+p.h, px, p.y+p.h+5, "#333", 1, false)
		c.text(px, p.y+p.h+19, "middle", 12, "", strconv.FormatFloat(x, 'f', -1, 64))
	}
	c.text(p.x+p.w/2, p.y+p.h+38, "middle", 13, "", p.xlabel)

	// y: from the values.
	var vals []float64
	for _, s := range p.series {
		for _, pt := range s.points {
			vals = append(vals, pt.y, max(pt.y, pt.hi))
		}
	}
	ys, ticks := yScale(vals, p.ylog, p.y+p.h, p.y)
	if p.ylog {
		// Unlabelled lines at 2 and 5 times each power of ten.
		for _, t := range ticks[:len(ticks)-1] {
			for _, m := range []float64{2, 5} {
				py := ys.pos(m * t)
				c.line(p.x, py, p.x+p.w, py, "#f0f0f0", 1, false)
			}
		}
	}
	for _, t := range ticks {
		py := ys.pos(t)
		c.line(p.x, py, p.x+p.w, py, "#ddd", 1, false)
		c.text(p.x-7, py+4, "end", 12, "", p.yfmt(t))
	}
	c.rect(p.x, p.y, p.w, p.h) // the frame again, over the grid
	cx, cy := p.x-58, p.y+p.h/2
	fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="13" transform="rotate(-90 %.1f %.1f)">`, cx, cy, cx, cy)
	c.escape(p.ylabel)
	c.b.WriteString("</text>\n")

	for _, s := range p.series {
		var pts []string
		for _, pt := range s.points {
			if p.ylog && pt.y <= 0 {
				continue // no place on a log scale
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xs.pos(pt.x)+s.offset, ys.pos(pt.y)))
		}
		if len(pts) > 1 {
			dash := ""
			if s.dashed {
				dash = ` stroke-dasharray="6 4"`
			}
			fmt.Fprintf(&c.b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), s.color, dash)
		}
		for _, pt := range s.points {
			if p.ylog && pt.y <= 0 {
				continue
			}
			px, py := xs.pos(pt.x)+s.offset, ys.pos(pt.y)
			if pt.hi > pt.y {
				top := ys.pos(pt.hi)
				c.line(px, py, px, top, s.color, 1.5, false)
				c.line(px-3, top, px+3, top, s.color, 1.5, false)
			}
			if s.dashed {
				fmt.Fprintf(&c.b, `<circle cx="%.1f" cy="%.1f" r="3" fill="white" stroke="%s" stroke-width="1.5"/>`+"\n", px, py, s.color)
			} else {
				c.circle(px, py, 3.5, s.color)
			}
		}
	}
}

// yScale returns a scale from the values' range to the pixels a (the
// bottom) to b, and its ticks: powers of ten on a log scale; 0 to a round
// maximum in four or five steps on a linear one.
func yScale(vals []float64, log bool, a, b float64) (scale, []float64) {
	if log {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range vals {
			if v > 0 {
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
		var ticks []float64
		for e := e0; e <= e1; e++ {
			ticks = append(ticks, math.Pow(10, e))
		}
		return scale{lo: ticks[0], hi: ticks[len(ticks)-1], a: a, b: b, log: true}, ticks
	}
	top := 0.0
	for _, v := range vals {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			top = max(top, v)
		}
	}
	step := niceStep(top / 4)
	var ticks []float64
	for i := 0; ; i++ {
		t := float64(i) * step
		ticks = append(ticks, roundTo(t, step))
		if t >= top*(1-1e-9) && i >= 1 {
			break
		}
	}
	return scale{lo: 0, hi: ticks[len(ticks)-1], a: a, b: b}, ticks
}

// niceStep returns the smallest of 1, 2 or 5 times a power of ten that is
// at least v (1 for v ≤ 0).
func niceStep(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
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

// svg builds an SVG document.
type svg struct{ b strings.Builder }

func newSVG(width, height int, title string) *svg {
	c := &svg{}
	fmt.Fprintf(&c.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif">`+"\n", width, height, width, height)
	c.b.WriteString("<title>")
	c.escape(title)
	c.b.WriteString("</title>\n")
	fmt.Fprintf(&c.b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	return c
}

func (c *svg) heading(width int, title, note string) {
	c.text(float64(width)/2, 28, "middle", 18, "bold", title)
	c.text(float64(width)/2, 50, "middle", 12, "", note)
}

// text writes a text element: anchor is start, middle or end; size in
// pixels; weight empty or bold.
func (c *svg) text(x, y float64, anchor string, size int, weight, s string) {
	fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%d"`, x, y, anchor, size)
	if weight != "" {
		fmt.Fprintf(&c.b, ` font-weight="%s"`, weight)
	}
	c.b.WriteString(">")
	c.escape(s)
	c.b.WriteString("</text>\n")
}

func (c *svg) line(x1, y1, x2, y2 float64, color string, width float64, dashed bool) {
	dash := ""
	if dashed {
		dash = ` stroke-dasharray="6 4"`
	}
	fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%.1f"%s/>`+"\n", x1, y1, x2, y2, color, width, dash)
}

func (c *svg) circle(x, y, r float64, color string) {
	fmt.Fprintf(&c.b, `<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s"/>`+"\n", x, y, r, color)
}

func (c *svg) rect(x, y, w, h float64) {
	fmt.Fprintf(&c.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", x, y, w, h)
}

func (c *svg) escape(s string) { _ = xml.EscapeText(&c.b, []byte(s)) }

func (c *svg) end(w io.Writer) error {
	c.b.WriteString("</svg>\n")
	_, err := io.WriteString(w, c.b.String())
	return err
}
