package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// parsedSVG is what a chart holds, as an XML parser reads it.
type parsedSVG struct {
	width, height float64
	title         string
	texts         []string
	count         map[string]int // elements by name
}

// parseSVG parses an SVG document, failing the test if it is not
// well-formed XML with an svg root, or if a coordinate is not a number
// inside the picture.
func parseSVG(t *testing.T, doc []byte) parsedSVG {
	t.Helper()
	p := parsedSVG{count: make(map[string]int)}
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
			if len(stack) == 0 {
				require.Equal(t, "svg", name, "the root")
				assert.Equal(t, "http://www.w3.org/2000/svg", tok.Name.Space)
				for _, a := range tok.Attr {
					switch a.Name.Local {
					case "width":
						p.width, _ = strconv.ParseFloat(a.Value, 64)
					case "height":
						p.height, _ = strconv.ParseFloat(a.Value, 64)
					}
				}
				require.Positive(t, p.width)
				require.Positive(t, p.height)
			}
			p.count[name]++
			for _, a := range tok.Attr {
				limit := 0.0
				switch a.Name.Local {
				case "x", "x1", "x2", "cx":
					limit = p.width
				case "y", "y1", "y2", "cy":
					limit = p.height
				default:
					continue
				}
				v, err := strconv.ParseFloat(a.Value, 64)
				require.NoError(t, err, "%s %s=%q", name, a.Name.Local, a.Value)
				assert.True(t, v >= 0 && v <= limit, "%s %s=%v outside the picture", name, a.Name.Local, v)
			}
			stack = append(stack, name)
			text.Reset()
		case xml.CharData:
			text.Write(tok)
		case xml.EndElement:
			switch stack[len(stack)-1] {
			case "text":
				p.texts = append(p.texts, text.String())
			case "title":
				p.title = text.String()
			}
			stack = stack[:len(stack)-1]
		}
	}
	require.Empty(t, stack, "every element closed")
	assert.NotContains(t, string(doc), "NaN")
	assert.NotContains(t, string(doc), "Inf")
	return p
}

func TestTimesChart(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, writeTimesChart(&b, fixture().Sizes, "a <note> & more"))
	c := parseSVG(t, b.Bytes())
	assert.Equal(t, "pir: how long until every member knows", c.title)
	for _, want := range []string{
		"pir: how long until every member knows, by number of hosts",
		"a <note> & more", // escaped, and read back
		"hosts in the LAN (log scale)",
		"time until the last member knows (log scale)",
		"10", "20", // the sizes
		"10 ms", "100 ms", "1 s", // fixture times run from 20 to 300 ms
		"dot: median of the runs", "bar: up to the p99",
	} {
		assert.Contains(t, c.texts, want)
	}
	for _, m := range measurements {
		assert.Contains(t, c.texts, m.name, "in the legend")
	}
	n := len(measurements)
	assert.Equal(t, n, c.count["polyline"], "a line per measure")
	assert.Equal(t, 2*n+n, c.count["circle"], "a dot per measure and size, and one per legend entry")
}

func TestSteadyChart(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, writeSteadyChart(&b, fixture().Sizes, "note"))
	c := parseSVG(t, b.Bytes())
	for _, want := range []string{
		"pir at steady state: cost per host, by number of hosts",
		"Packets per second per host", "Bytes per second per host", "CPU per host", "Resident memory per host",
		"packets/s", "kB/s", "% of one core", "MiB (VmRSS)",
		"sent", "received", "pir process", "median", "max",
		"150", // packets: up to 120 received per host, in steps of 50
	} {
		assert.Contains(t, c.texts, want)
	}
	// Panels: packets and bytes have sent and received, CPU and memory
	// one line; each a median and a max.
	assert.Equal(t, 2*(2+2+1+1), c.count["polyline"])
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
			assert.Zero(t, c.count["polyline"], "no line through one point")
		})
		t.Run(name+", no sizes", func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, write(&b, nil, ""))
			assert.Contains(t, parseSVG(t, b.Bytes()).texts, "no data")
		})
		t.Run(name+", zero times", func(t *testing.T) {
			sizes := []sizeResult{{Hosts: 10, Times: summarize([]sample{{Name: mGoodbye}}), Steady: summarizeSteady([]hostSample{{}})}}
			var b bytes.Buffer
			require.NoError(t, write(&b, sizes, ""))
			parseSVG(t, b.Bytes())
		})
	}
}

func TestScales(t *testing.T) {
	s := scale{lo: 1, hi: 100, a: 400, b: 0, log: true}
	assert.InDelta(t, 400, s.pos(1), 1e-9)
	assert.InDelta(t, 200, s.pos(10), 1e-9, "log scale: 10 halfway between 1 and 100")
	assert.InDelta(t, 0, s.pos(100), 1e-9)
	assert.InDelta(t, 5, scale{lo: 3, hi: 3, a: 0, b: 10}.pos(3), 1e-9, "one value: the middle")

	ys, ticks := yScale([]float64{20, 300}, true, 400, 0)
	assert.Equal(t, []float64{10, 100, 1000}, ticks)
	assert.Greater(t, ys.pos(20), ys.pos(300), "larger values higher up")
	_, ticks = yScale([]float64{10}, true, 400, 0)
	assert.Equal(t, []float64{10, 100}, ticks, "at least a decade")
	_, ticks = yScale(nil, true, 400, 0)
	assert.Len(t, ticks, 2)

	_, ticks = yScale([]float64{0.3, 1.1}, false, 400, 0)
	assert.Equal(t, []float64{0, 0.5, 1, 1.5}, ticks)
	_, ticks = yScale([]float64{0, 0}, false, 400, 0)
	assert.Equal(t, []float64{0, 1}, ticks)
	_, ticks = yScale([]float64{120}, false, 400, 0)
	assert.Equal(t, []float64{0, 50, 100, 150}, ticks)
	_, ticks = yScale([]float64{0.3}, false, 400, 0)
	assert.Equal(t, []float64{0, 0.1, 0.2, 0.3}, ticks, "rounded: no 0.30000000000000004")

	for v, want := range map[float64]float64{0: 1, 0.07: 0.1, 1: 1, 1.2: 2, 3: 5, 7: 10, 30: 50, math.NaN(): 1} {
		assert.Equal(t, want, niceStep(v), "%v", v)
	}
	assert.Equal(t, "250 ms", msLabel(250))
	assert.Equal(t, "1.5 s", msLabel(1500))
}
