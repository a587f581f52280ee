package prometheus_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	pirprom "github.com/pirlan/pir/plugins/prometheus"
)

func newProbeMetrics(t *testing.T) (*pirprom.ProbeMetrics, *prometheus.Registry) {
	t.Helper()
	m, err := pirprom.NewProbeMetrics(pirprom.ProbeConfig{Group: "web"})
	require.NoError(t, err)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(m))
	return m, reg
}

// TestInstrumentResults: each probe is counted under the result its error
// names, and the error is passed on unchanged.
func TestInstrumentResults(t *testing.T) {
	for _, tc := range []struct {
		err    error
		result string
	}{
		{nil, pirprom.ResultOK},
		{fmt.Errorf("probe: %w", healthcheck.ErrUnhealthy), pirprom.ResultUnhealthy},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), pirprom.ResultTimeout},
		{fmt.Errorf("probe: %w", context.DeadlineExceeded), pirprom.ResultTimeout},
		{fmt.Errorf("probe: %w", context.Canceled), pirprom.ResultCanceled},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), pirprom.ResultError},
	} {
		t.Run(tc.result, func(t *testing.T) {
			m, reg := newProbeMetrics(t)
			p := m.Instrument(healthcheck.ProberFunc(func(context.Context, *url.URL) error { return tc.err }))
			for range 3 {
				err := p.Probe(context.Background(), &url.URL{Scheme: "TCP", Host: "198.18.0.1:1"})
				if tc.err == nil {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, tc.err)
				}
			}
			fs := gather(t, reg)
			assert.Equal(t, uint64(3), fs.count("pir_probe_duration_seconds", "scheme", "tcp", "result", tc.result, "group", "web"))
			assert.Len(t, fs["pir_probe_duration_seconds"].GetMetric(), 1, "one series: scheme tcp, result %s", tc.result)
		})
	}
}

// TestInstrumentTimes: a probe's duration lands in the right bucket.
func TestInstrumentTimes(t *testing.T) {
	m, reg := newProbeMetrics(t)
	hs := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	require.NoError(t, hs.Start("127.0.0.1:0"))
	defer hs.Close()
	p := m.Instrument(healthcheck.NewRegistry())
	require.NoError(t, p.Probe(context.Background(), hs.URI()))

	mt, ok := gather(t, reg).metric("pir_probe_duration_seconds", "scheme", "tcp", "result", "ok")
	require.True(t, ok)
	h := mt.GetHistogram()
	require.Equal(t, uint64(1), h.GetSampleCount())
	assert.Greater(t, h.GetSampleSum(), 0.0)
	assert.Less(t, h.GetSampleSum(), 2.0, "a probe of 127.0.0.1 within the default timeout")
	// The buckets are cumulative: those at or above the sum hold the probe,
	// those below it do not.
	want := pirprom.DefaultProbeConfig("").Buckets
	require.Len(t, h.GetBucket(), len(want))
	for i, b := range h.GetBucket() {
		assert.Equal(t, want[i], b.GetUpperBound())
		if b.GetUpperBound() >= h.GetSampleSum() {
			assert.Equal(t, uint64(1), b.GetCumulativeCount(), "bucket le=%g", b.GetUpperBound())
		} else {
			assert.Equal(t, uint64(0), b.GetCumulativeCount(), "bucket le=%g", b.GetUpperBound())
		}
	}
}

// TestInstrumentSchemeCap: the scheme label takes at most MaxSchemes values.
func TestInstrumentSchemeCap(t *testing.T) {
	m, reg := newProbeMetrics(t)
	p := m.Instrument(healthcheck.ProberFunc(func(context.Context, *url.URL) error { return nil }))
	for i := range pirprom.MaxSchemes + 5 {
		require.NoError(t, p.Probe(context.Background(), &url.URL{Scheme: fmt.Sprintf("s%d", i), Host: "h:1"}))
	}
	require.NoError(t, p.Probe(context.Background(), &url.URL{Scheme: "s0", Host: "h:1"}))
	fs := gather(t, reg)
	assert.Len(t, fs["pir_probe_duration_seconds"].GetMetric(), pirprom.MaxSchemes+1)
	assert.Equal(t, uint64(2), fs.count("pir_probe_duration_seconds", "scheme", "s0"))
	assert.Equal(t, uint64(5), fs.count("pir_probe_duration_seconds", "scheme", "other"))
}

// TestInstrumentSupports: the instrumented prober supports what the wrapped
// one does.
func TestInstrumentSupports(t *testing.T) {
	m, _ := newProbeMetrics(t)
	reg := m.Instrument(healthcheck.NewRegistry()).(healthcheck.SchemeSupporter)
	assert.True(t, reg.Supports("tcp"))
	assert.True(t, reg.Supports("http"))
	assert.False(t, reg.Supports("gopher"))

	fn := m.Instrument(healthcheck.ProberFunc(func(context.Context, *url.URL) error { return nil }))
	assert.True(t, fn.(healthcheck.SchemeSupporter).Supports("gopher"), "a ProberFunc takes every scheme")
}

// TestInstrumentSchemeFilter: a Group probing through an instrumented
// Registry still drops announcements whose scheme the Registry lacks.
func TestInstrumentSchemeFilter(t *testing.T) {
	l := newLab(t)
	m, _ := newProbeMetrics(t)
	a := l.join("a", l.health(), func(c *discovery.Config) { c.Prober = m.Instrument(healthcheck.NewRegistry()) })
	col, err := pirprom.NewCollector(a, pirprom.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { col.Close() })
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(col))

	l.join("b", l.health(), func(c *discovery.Config) {
		c.Self.HealthURI = &url.URL{Scheme: "gopher", Host: "127.0.0.1:70"}
		// b's own Registry would refuse gopher too; a ProberFunc takes it.
		c.Prober = healthcheck.ProberFunc(func(context.Context, *url.URL) error { return nil })
	})
	require.Eventually(t, func() bool {
		return gather(t, reg).value("pir_dropped_datagrams_total", "reason", "bad_uri") > 0
	}, waitFor, pollEvery)
	assert.Empty(t, a.Members())
}

func TestProbeConfigValidate(t *testing.T) {
	assert.NoError(t, pirprom.DefaultProbeConfig("web").Validate())
	assert.NoError(t, pirprom.ProbeConfig{}.Validate())
	assert.NoError(t, pirprom.ProbeConfig{Buckets: []float64{0.1, 1, math.Inf(1)}}.Validate())

	err := pirprom.ProbeConfig{Group: "\xff", Buckets: []float64{1, 1, math.NaN(), 0.5}}.Validate()
	require.ErrorIs(t, err, pirprom.ErrInvalidConfig)
	for _, want := range []string{"UTF-8", "Buckets[1]", "Buckets[2] is NaN", "Buckets[3]"} {
		assert.ErrorContains(t, err, want)
	}
	_, err = pirprom.NewProbeMetrics(pirprom.ProbeConfig{Buckets: []float64{2, 1}})
	assert.ErrorIs(t, err, pirprom.ErrInvalidConfig)
}

// FuzzInstrumentScheme: whatever scheme a health URI carries (they come
// from the network), the probe is recorded under a valid label and a scrape
// succeeds.
func FuzzInstrumentScheme(f *testing.F) {
	for _, s := range []string{"tcp", "HTTP", "", "other", "a\xffb", "\x00", "ünï", "s+.-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, scheme string) {
		m, err := pirprom.NewProbeMetrics(pirprom.ProbeConfig{})
		require.NoError(t, err)
		reg := prometheus.NewPedanticRegistry()
		require.NoError(t, reg.Register(m))
		p := m.Instrument(healthcheck.ProberFunc(func(context.Context, *url.URL) error { return errors.New("no") }))
		_ = p.Probe(context.Background(), &url.URL{Scheme: scheme})
		mfs, err := reg.Gather()
		require.NoError(t, err)
		require.Len(t, mfs, 1)
		require.Len(t, mfs[0].GetMetric(), 1)
		for _, l := range mfs[0].GetMetric()[0].GetLabel() {
			require.True(t, utf8.ValidString(l.GetValue()))
		}
	})
}
