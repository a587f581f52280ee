package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pirlan/pir/healthcheck"
)

// MaxSchemes caps the distinct values of the scheme label of
// pir_probe_duration_seconds. Probes of any further scheme are counted under
// scheme="other". Health URIs come from the network: without the cap, a prober
// that accepts every scheme would let forged announcements add series at will.
const MaxSchemes = 16

// Probe results, the values of the result label of pir_probe_duration_seconds.
const (
	// ResultOK: the peer answered as a healthy peer.
	ResultOK = "ok"
	// ResultUnhealthy: the peer answered, as an unhealthy peer
	// (healthcheck.ErrUnhealthy).
	ResultUnhealthy = "unhealthy"
	// ResultTimeout: no answer in time (os.ErrDeadlineExceeded or
	// context.DeadlineExceeded).
	ResultTimeout = "timeout"
	// ResultCanceled: the probe was called off (context.Canceled), as when
	// the Group closes.
	ResultCanceled = "canceled"
	// ResultError: any other failure, such as a refused connection.
	ResultError = "error"
)

// ProbeConfig configures ProbeMetrics.
type ProbeConfig struct {
	// Group is the value of the "group" label, as in Config. Valid UTF-8.
	// Empty means no group label.
	Group string

	// Buckets are the upper bounds of the histogram's buckets, in seconds,
	// strictly increasing. Nil or empty means DefaultProbeConfig's: 100 µs
	// to 5 s in steps of 1, 2.5 and 5, for probes that take well under a
	// millisecond on a LAN and up to discovery.Config.ProbeTimeout (2 s by
	// default) when they time out.
	Buckets []float64
}

// DefaultProbeConfig returns a ProbeConfig for the group named group, with
// every other field at its default.
func DefaultProbeConfig(group string) ProbeConfig {
	return ProbeConfig{
		Group: group,
		Buckets: []float64{
			.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5,
		},
	}
}

// Validate reports every problem with c at once, each wrapping
// ErrInvalidConfig.
func (c ProbeConfig) Validate() error {
	var errs []error
	if !utf8.ValidString(c.Group) {
		errs = append(errs, fmt.Errorf("%w: Group %q is not valid UTF-8", ErrInvalidConfig, c.Group))
	}
	for i, b := range c.Buckets {
		switch {
		case math.IsNaN(b):
			errs = append(errs, fmt.Errorf("%w: Buckets[%d] is NaN", ErrInvalidConfig, i))
		case i > 0 && !(b > c.Buckets[i-1]):
			errs = append(errs, fmt.Errorf("%w: Buckets[%d] = %g does not exceed Buckets[%d] = %g: bounds must increase strictly",
				ErrInvalidConfig, i, b, i-1, c.Buckets[i-1]))
		}
	}
	return errors.Join(errs...)
}

// ProbeMetrics is a prometheus.Collector that times health probes into the
// histogram pir_probe_duration_seconds{scheme, result}. Instrument wraps the
// Prober a Group probes with; register the ProbeMetrics itself with a
// prometheus.Registerer. One ProbeMetrics may instrument several probers.
//
// Its methods are safe for concurrent use.
type ProbeMetrics struct {
	hist *prometheus.HistogramVec

	mu      sync.Mutex
	schemes map[string]bool // the scheme label values in use
}

var _ prometheus.Collector = (*ProbeMetrics)(nil)

// NewProbeMetrics returns ProbeMetrics configured by cfg.
func NewProbeMetrics(cfg ProbeConfig) (*ProbeMetrics, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Buckets) == 0 {
		cfg.Buckets = DefaultProbeConfig("").Buckets
	}
	var constLabels prometheus.Labels
	if cfg.Group != "" {
		constLabels = prometheus.Labels{"group": cfg.Group}
	}
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace:   Namespace,
		Name:        "probe_duration_seconds",
		Help:        "Time health probes of peers took, by the health URI's scheme and the probe's result.",
		ConstLabels: constLabels,
		Buckets:     cfg.Buckets,
	}, []string{"scheme", "result"})
	return &ProbeMetrics{hist: hist, schemes: map[string]bool{}}, nil
}

// Describe sends the histogram's descriptor.
func (m *ProbeMetrics) Describe(ch chan<- *prometheus.Desc) { m.hist.Describe(ch) }

// Collect sends the histogram, one series per scheme and result seen.
func (m *ProbeMetrics) Collect(ch chan<- prometheus.Metric) { m.hist.Collect(ch) }

// Instrument returns a Prober that probes with p and times each probe. Pass
// it as discovery.Config.Prober:
//
//	Prober: probes.Instrument(healthcheck.NewRegistry())
//
// The Prober it returns implements healthcheck.SchemeSupporter: it supports
// the schemes p supports when p implements SchemeSupporter, and every scheme
// otherwise, so that a Group drops the same announcements as it would with p.
func (m *ProbeMetrics) Instrument(p healthcheck.Prober) healthcheck.Prober {
	return &timedProber{p: p, m: m}
}

// observe records one probe.
func (m *ProbeMetrics) observe(scheme string, err error, d time.Duration) {
	m.hist.WithLabelValues(m.scheme(scheme), result(err)).Observe(d.Seconds())
}

// scheme returns the label value for a URI scheme: the scheme in lower case,
// or "other" once MaxSchemes schemes are in use.
func (m *ProbeMetrics) scheme(s string) string {
	s = strings.ToLower(strings.ToValidUTF8(s, "\uFFFD"))
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.schemes[s] {
		return s
	}
	if len(m.schemes) >= MaxSchemes {
		return "other"
	}
	m.schemes[s] = true
	return s
}

// result names what a probe's error says, through the errors the
// healthcheck package documents.
func result(err error) string {
	switch {
	case err == nil:
		return ResultOK
	case errors.Is(err, healthcheck.ErrUnhealthy):
		return ResultUnhealthy
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return ResultTimeout
	case errors.Is(err, context.Canceled):
		return ResultCanceled
	}
	return ResultError
}

// timedProber is the Prober Instrument returns.
type timedProber struct {
	p healthcheck.Prober
	m *ProbeMetrics
}

var _ healthcheck.SchemeSupporter = (*timedProber)(nil)

// Probe probes target with the wrapped prober and records how long it took.
func (t *timedProber) Probe(ctx context.Context, target *url.URL) error {
	start := time.Now()
	err := t.p.Probe(ctx, target)
	var scheme string
	if target != nil {
		scheme = target.Scheme
	}
	t.m.observe(scheme, err, time.Since(start))
	return err
}

// Supports forwards to the wrapped prober, which supports every scheme
// unless it implements healthcheck.SchemeSupporter.
func (t *timedProber) Supports(scheme string) bool {
	if s, ok := t.p.(healthcheck.SchemeSupporter); ok {
		return s.Supports(scheme)
	}
	return true
}
