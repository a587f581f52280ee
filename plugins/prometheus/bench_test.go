package prometheus_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	pirprom "github.com/pirlan/pir/plugins/prometheus"
	"github.com/pirlan/pir/transport/mem"
)

// BenchmarkGather measures one scrape's Gather of a Collector whose Group
// has 100 members, with and without the per-member gauge.
func BenchmarkGather(b *testing.B) {
	const n = 100
	lan, err := mem.NewLAN(mem.Config{QueueLen: 4096})
	require.NoError(b, err)
	ok := healthcheck.ProberFunc(func(context.Context, *url.URL) error { return nil })
	var groups []*discovery.Group
	defer func() {
		for _, g := range groups {
			g.Close()
		}
	}()
	for i := range n + 1 {
		g, err := discovery.Join(context.Background(), discovery.Config{
			Name:             "web",
			Self:             discovery.Peer{ID: fmt.Sprintf("m%03d", i), HealthURI: &url.URL{Scheme: "tcp", Host: fmt.Sprintf("198.18.0.%d:1", i%250+1)}},
			Transport:        lan.Join(),
			Prober:           ok,
			AnnounceInterval: time.Second,
			NewPeerRate:      -1,
		})
		require.NoError(b, err)
		groups = append(groups, g)
	}
	require.Eventually(b, func() bool { return len(groups[0].Members()) == n }, 30*time.Second, 10*time.Millisecond)

	for _, memberHealth := range []bool{false, true} {
		b.Run(fmt.Sprintf("MemberHealth=%v", memberHealth), func(b *testing.B) {
			c, err := pirprom.NewCollector(groups[0], pirprom.Config{Group: "web", MemberHealth: memberHealth})
			require.NoError(b, err)
			defer c.Close()
			reg := prometheus.NewRegistry()
			require.NoError(b, reg.Register(c))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := reg.Gather(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInstrument measures what timing a probe adds to it.
func BenchmarkInstrument(b *testing.B) {
	m, err := pirprom.NewProbeMetrics(pirprom.ProbeConfig{})
	require.NoError(b, err)
	bare := healthcheck.ProberFunc(func(context.Context, *url.URL) error { return nil })
	target := &url.URL{Scheme: "tcp", Host: "198.18.0.1:1"}
	for name, p := range map[string]healthcheck.Prober{"bare": bare, "instrumented": m.Instrument(bare)} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = p.Probe(context.Background(), target)
			}
		})
	}
}
