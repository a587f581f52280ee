package prometheus_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/transport/mem"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor is how long a test waits for the Group to reach a state. The
// protocol's timings in fastConfig make every state reachable in well under
// a second; the margin is for a loaded machine.
const waitFor = 15 * time.Second

// pollEvery is how often a test looks while it waits.
const pollEvery = 10 * time.Millisecond

// lab is an in-memory LAN of Groups whose health URIs are real TCP health
// servers on 127.0.0.1.
type lab struct {
	t   *testing.T
	lan *mem.LAN
}

func newLab(t *testing.T) *lab {
	lan, err := mem.NewLAN(mem.Config{Loopback: true})
	require.NoError(t, err)
	return &lab{t: t, lan: lan}
}

// health starts a pir TCP health server on 127.0.0.1.
func (l *lab) health() *healthcheck.TCPServer {
	l.t.Helper()
	s := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	require.NoError(l.t, s.Start("127.0.0.1:0"))
	l.t.Cleanup(func() { s.Close() })
	return s
}

// join starts a member called id, probed at hs, with fast timings. Its
// Group closes when the test ends.
func (l *lab) join(id string, hs *healthcheck.TCPServer, mutate ...func(*discovery.Config)) *discovery.Group {
	l.t.Helper()
	cfg := discovery.Config{
		Name:                 "web",
		Self:                 discovery.Peer{ID: id, HealthURI: hs.URI()},
		Transport:            l.lan.Join(),
		AnnounceInterval:     50 * time.Millisecond,
		ProbeInterval:        50 * time.Millisecond,
		SuspectProbeInterval: 20 * time.Millisecond,
		ProbeTimeout:         time.Second,
		// The legacy engine, in which members probe each other: these
		// tests read the probe and suspicion metrics its probes feed.
		// (With the frugal engine, the default, a member reports its
		// own health and is not probed once it joined.)
		PingInterval: -1,
	}
	for _, f := range mutate {
		f(&cfg)
	}
	g, err := discovery.Join(context.Background(), cfg)
	require.NoError(l.t, err)
	l.t.Cleanup(func() { g.Close() })
	return g
}

// serve serves reg's metrics over HTTP on 127.0.0.1 and returns the
// /metrics URL and a client for it.
func serve(t *testing.T, reg *prometheus.Registry) (string, *http.Client) {
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics", srv.Client()
}

// families are parsed metrics, by name.
type families map[string]*dto.MetricFamily

// scrape GETs url and parses the text exposition it returns.
func scrape(t *testing.T, c *http.Client, url string) families {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	p := expfmt.NewTextParser(model.UTF8Validation)
	fs, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fs
}

// gather collects reg's metrics without HTTP.
func gather(t *testing.T, reg prometheus.Gatherer) families {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	fs := families{}
	for _, mf := range mfs {
		fs[mf.GetName()] = mf
	}
	return fs
}

// metric finds the series of name whose labels include every pair of kv
// (name, value, name, value...).
func (fs families) metric(name string, kv ...string) (*dto.Metric, bool) {
	mf, ok := fs[name]
	if !ok {
		return nil, false
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(kv); i += 2 {
			if label(m, kv[i]) != kv[i+1] {
				continue next
			}
		}
		return m, true
	}
	return nil, false
}

// value is the value of a counter or gauge series; -1 when there is none, so
// that a missing series fails comparisons with the values tests expect.
func (fs families) value(name string, kv ...string) float64 {
	m, ok := fs.metric(name, kv...)
	switch {
	case !ok:
		return -1
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return -1
}

// count is the sample count of a histogram series; 0 when there is none.
func (fs families) count(name string, kv ...string) uint64 {
	m, ok := fs.metric(name, kv...)
	if !ok || m.Histogram == nil {
		return 0
	}
	return m.Histogram.GetSampleCount()
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
