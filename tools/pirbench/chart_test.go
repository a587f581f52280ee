package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// parsedSVG is what a chart holds, as an XML parser reads it.
type parsedSVG struct {
	width, height float64
	texts         []string
	paths         []svgPath
}

// svgPath is a path element: its style and its points.
type svgPath struct {
	style  string
	points [][2]float64
}

var pathPoint = regexp.MustCompile(`[ML]([-0-9.e]+),([-0-9.e]+)`)

// parseSVG parses an SVG document, failing the test if it is not
// well-formed XML with an svg root of a size in points, or if it holds a
// NaN or an infinity.
func parseSVG(t *testing.T, doc []byte) parsedSVG {
	t.Helper()
	var p parsedSVG
	d := xml.NewDecoder(bytes.NewReader(doc))
	var stack []string
	var text strings.Builder
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		switch tok := tok.(type) {
		case xml.StartElement:
			name := tok.Name.Local
			attr := func(n string) string {
				for _, a := range tok.Attr {
					if a.Name.Local == n {
						return a.Value
					}
				}
				return ""
			}
			if len(stack) == 0 {
				require.Equal(t, "svg", name, "the root")
				assert.Equal(t, "http://www.w3.org/2000/svg", tok.Name.Space)
				p.width, _ = strconv.ParseFloat(strings.TrimSuffix(attr("width"), "pt"), 64)
				p.height, _ = strconv.ParseFloat(strings.TrimSuffix(attr("height"), "pt"), 64)
				require.Positive(t, p.width)
				require.Positive(t, p.height)
			}
			if name == "path" {
				sp := svgPath{style: attr("style")}
				for _, m := range pathPoint.FindAllStringSubmatch(attr("d"), -1) {
					x, err1 := strconv.ParseFloat(m[1], 64)
					y, err2 := strconv.ParseFloat(m[2], 64)
					require.NoError(t, errors.Join(err1, err2), "path %q", attr("d"))
					assert.True(t, x >= 0 && x <= p.width && y >= 0 && y <= p.height, "path point %v,%v outside the picture", x, y)
					sp.points = append(sp.points, [2]float64{x, y})
				}
				p.paths = append(p.paths, sp)
			}
			stack = append(stack, name)
			text.Reset()
		case xml.CharData:
			text.Write(tok)
		case xml.EndElement:
			if stack[len(stack)-1] == "text" {
				p.texts = append(p.texts, text.String())
			}
			stack = stack[:len(stack)-1]
		}
	}
	require.Empty(t, stack, "every element closed")
	assert.NotContains(t, string(doc), "NaN")
	assert.NotContains(t, string(doc), "Inf")
	return p
}

func hex(c color.RGBA) string { return fmt.Sprintf("#%02X%02X%02X", c.R, c.G, c.B) }

// lines returns the data lines drawn in colour c, solid or dashed: the
// paths of the series' stroke that are not horizontal (a legend's sample
// of the line is).
func (p parsedSVG) lines(c color.RGBA, dashed bool) []svgPath {
	var out []svgPath
	for _, sp := range p.paths {
		if !strings.Contains(sp.style, "stroke:"+hex(c)+";stroke-width:1.5") || strings.Contains(sp.style, "dasharray") != dashed {
			continue
		}
		if len(sp.points) >= 2 && sp.points[0][1] != sp.points[len(sp.points)-1][1] {
			out = append(out, sp)
		}
	}
	return out
}

func TestTimesChart(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, writeTimesChart(&b, fixture().Sizes, "a <note> & more"))
	c := parseSVG(t, b.Bytes())
	for _, want := range []string{
		"pir: how long until every member knows, by number of hosts",
		"a <note> & more", // escaped, and read back
		"hosts in the LAN (log scale)",
		"time until the last member knows",
		"10", "20", // the sizes
		"10 ms", "100 ms", "1 s", // fixture times run from 20 to 300 ms
		"dot: median of the runs", "bar: up to the p99",
	} {
		assert.Contains(t, c.texts, want)
	}
	for i, m := range measurements {
		assert.Contains(t, c.texts, m.name, "in the legend")
		// The fixture's times grow with the hosts: each measure's line
		// runs from the left up to the right (SVG's y is flipped).
		lines := c.lines(palette[i], false)
		if assert.Len(t, lines, 1, "a line for %s", m.name) {
			pts := lines[0].points
			assert.Len(t, pts, 2, "a point per size")
			assert.Less(t, pts[0][0], pts[1][0], "10 hosts left of 20")
			assert.Less(t, pts[0][1], pts[1][1], "the median at 20 hosts above the one at 10")
		}
	}
}

func TestSteadyChart(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, writeSteadyChart(&b, fixture().Sizes, "note"))
	c := parseSVG(t, b.Bytes())
	for _, want := range []string{
		"pir at steady state: cost per host, by number of hosts",
		"Packets per second per host", "Bytes per second per host", "CPU per host", "Resident memory per host",
		"packets/s", "kB/s", "% of one core", "MiB (VmRSS)",
		"sent, median", "received, max", "pir process, median", "pir process, max",
		"150", // packets: up to 120 received per host, in steps of 50
	} {
		assert.Contains(t, c.texts, want)
	}
	// Packets and bytes have sent (palette[0]) and received (palette[1]),
	// CPU (palette[2]) and memory (palette[4]) one line; each a median
	// (solid) and a max (dashed). Memory does not grow with the fixture's
	// hosts: its lines are flat, and not counted here.
	for _, tc := range []struct {
		color color.RGBA
		n     int
	}{{palette[0], 2}, {palette[1], 2}, {palette[2], 1}} {
		assert.Len(t, c.lines(tc.color, false), tc.n, "median lines of %s", hex(tc.color))
		assert.Len(t, c.lines(tc.color, true), tc.n, "max lines of %s", hex(tc.color))
	}
}

func TestChartsWithoutData(t *testing.T) {
	one := fixture().Sizes[:1]
	for name, write := range map[string]func(io.Writer, []sizeResult, string) error{
		"times": writeTimesChart, "steady": writeSteadyChart,
	} {
		t.Run(name+", one size", func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, write(&b, one, ""))
			c := parseSVG(t, b.Bytes())
			assert.Contains(t, c.texts, "20")
			for _, col := range palette {
				assert.Empty(t, c.lines(col, false), "no line through one point")
			}
		})
		t.Run(name+", no sizes", func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, write(&b, nil, ""))
			assert.Contains(t, parseSVG(t, b.Bytes()).texts, "no data")
		})
		t.Run(name+", zero times", func(t *testing.T) {
			// Zero has no place on a log axis; gonum would panic on it.
			sizes := []sizeResult{{Hosts: 10, Times: summarize([]sample{{Name: mGoodbye}}), Steady: summarizeSteady([]hostSample{{}})}}
			var b bytes.Buffer
			require.NoError(t, write(&b, sizes, ""))
			parseSVG(t, b.Bytes())
		})
	}
}

func TestYTicks(t *testing.T) {
	lo, hi, ticks := yTicks([]float64{20, 300}, true)
	assert.Equal(t, []float64{10, 100, 1000}, ticks)
	assert.Equal(t, [2]float64{10, 1000}, [2]float64{lo, hi})
	_, _, ticks = yTicks([]float64{10}, true)
	assert.Equal(t, []float64{10, 100}, ticks, "at least a decade")
	_, _, ticks = yTicks([]float64{0, -1, math.Inf(1)}, true)
	assert.Equal(t, []float64{1, 10}, ticks, "no positive finite value: a default decade")

	_, hi, ticks = yTicks([]float64{0.3, 1.1}, false)
	assert.Equal(t, []float64{0, 0.5, 1, 1.5}, ticks)
	assert.Equal(t, 1.5, hi)
	_, _, ticks = yTicks([]float64{0, 0}, false)
	assert.Equal(t, []float64{0, 1}, ticks)
	_, _, ticks = yTicks([]float64{120, math.NaN()}, false)
	assert.Equal(t, []float64{0, 50, 100, 150}, ticks)
	_, _, ticks = yTicks([]float64{0.3}, false)
	assert.Equal(t, []float64{0, 0.1, 0.2, 0.3}, ticks, "rounded: no 0.30000000000000004")

	for v, want := range map[float64]float64{0: 1, 0.07: 0.1, 1: 1, 1.2: 2, 3: 5, 7: 10, 30: 50, math.NaN(): 1} {
		assert.Equal(t, want, niceStep(v), "%v", v)
	}
	assert.Equal(t, "250 ms", msLabel(250))
	assert.Equal(t, "1.5 s", msLabel(1500))
}
