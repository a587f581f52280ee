package prometheus_test

import (
	"time"

	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	pirprom "github.com/pirlan/pir/plugins/prometheus"
	"github.com/pirlan/pir/score"
)

// TestScrape follows one member's metrics, scraped over HTTP from a real
// /metrics endpoint, while peers join, send garbage, leave and fail.
func TestScrape(t *testing.T) {
	l := newLab(t)
	probes, err := pirprom.NewProbeMetrics(pirprom.DefaultProbeConfig("web"))
	require.NoError(t, err)
	a := l.join("a", l.health(), func(c *discovery.Config) {
		c.Prober = probes.Instrument(healthcheck.NewRegistry())
	})
	c, err := pirprom.NewCollector(a, pirprom.Config{Group: "web", MemberHealth: true})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(c))
	require.NoError(t, reg.Register(probes))
	url, client := serve(t, reg)

	// Alone: no members, every drop reason present.
	fs := scrape(t, client, url)
	assert.Equal(t, 0.0, fs.value("pir_members", "verdict", "healthy"))
	assert.Equal(t, 0.0, fs.value("pir_members", "verdict", "suspect"))
	assert.Equal(t, 0.0, fs.value("pir_events_total", "type", "joined"))
	assert.Equal(t, 0.0, fs.value("pir_dropped_datagrams_total", "reason", "malformed"))
	assert.Len(t, fs["pir_dropped_datagrams_total"].GetMetric(), len(a.Stats().Dropped))
	_, ok := fs.metric("pir_member_health")
	assert.False(t, ok, "no member, no member_health series")

	// b joins: a probes it over TCP, and it is a healthy member. Events
	// are counted as the Collector's listener receives them, a moment
	// after the member list shows b: wait for both.
	hb := l.health()
	l.join("b", hb)
	require.Eventually(t, func() bool {
		fs = scrape(t, client, url)
		return fs.value("pir_members", "verdict", "healthy") == 1 && fs.value("pir_events_total", "type", "joined") == 1
	}, waitFor, pollEvery)
	assert.Equal(t, 1.0, fs.value("pir_member_health", "member", "b"))
	assert.Equal(t, 0.0, fs.value("pir_members", "verdict", "suspect"))
	assert.Equal(t, 0.0, fs.value("pir_pending_peers"))
	assert.GreaterOrEqual(t, fs.value("pir_probes_total", "result", "ok"), 1.0)
	assert.GreaterOrEqual(t, fs.count("pir_probe_duration_seconds", "scheme", "tcp", "result", "ok"), uint64(1))
	assert.Greater(t, fs.value("pir_received_datagrams_total"), 0.0)
	assert.Greater(t, fs.value("pir_sent_datagrams_total"), 0.0)
	for name, mf := range fs {
		if !strings.HasPrefix(name, "pir_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			assert.Equal(t, "web", label(m, "group"), "%s has no group label", name)
		}
	}

	// A datagram no codec can read is dropped as malformed, and counted
	// once.
	require.NoError(t, l.lan.Join().Send([]byte("garbage")))
	require.Eventually(t, func() bool {
		fs = scrape(t, client, url)
		return fs.value("pir_dropped_datagrams_total", "reason", "malformed") == 1
	}, waitFor, pollEvery)
	assert.Greater(t, fs.value("pir_received_datagrams_total"), fs.value("pir_decoded_datagrams_total"))

	// d joins and says goodbye.
	d := l.join("d", l.health())
	require.Eventually(t, func() bool {
		_, ok := a.Member("d")
		return ok
	}, waitFor, pollEvery)
	require.NoError(t, d.Leave(context.Background()))
	require.Eventually(t, func() bool {
		fs = scrape(t, client, url)
		return fs.value("pir_departures_total", "reason", "goodbye") == 1
	}, waitFor, pollEvery)
	assert.Equal(t, 2.0, fs.value("pir_events_total", "type", "joined"))
	assert.Equal(t, 1.0, fs.value("pir_events_total", "type", "left"))
	_, ok = fs.metric("pir_member_health", "member", "d")
	assert.False(t, ok, "d left: its series is gone")

	// b's health server turns unhealthy: a's probes get no reply, b turns
	// suspect, then dead, and leaves as failed.
	hb.SetHealthy(false)
	require.Eventually(t, func() bool {
		fs = scrape(t, client, url)
		return fs.value("pir_departures_total", "reason", "failed") == 1
	}, waitFor, pollEvery)
	assert.Equal(t, 0.0, fs.value("pir_members", "verdict", "healthy"))
	assert.GreaterOrEqual(t, fs.value("pir_events_total", "type", "health"), 1.0)
	assert.Equal(t, 2.0, fs.value("pir_events_total", "type", "left"))
	assert.Equal(t, 0.0, fs.value("pir_departures_total", "reason", "expired"))
	assert.GreaterOrEqual(t, fs.value("pir_probes_total", "result", "failed"), 1.0)
	assert.GreaterOrEqual(t, fs.count("pir_probe_duration_seconds", "scheme", "tcp", "result", "unhealthy"), uint64(1))
}

// TestSuspect: a member whose probes fail, under a policy that keeps it
// rather than give up, counts as suspect.
func TestSuspect(t *testing.T) {
	l := newLab(t)
	patient := func(c *discovery.Config) {
		c.Policy = score.NewThreshold(score.ThresholdConfig{Limit: 1 << 20})
	}
	a := l.join("a", l.health(), patient)
	c, err := pirprom.NewCollector(a, pirprom.Config{MemberHealth: true})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))

	hb := l.health()
	l.join("b", hb, patient)
	require.Eventually(t, func() bool {
		return gather(t, reg).value("pir_members", "verdict", "healthy") == 1
	}, waitFor, pollEvery)
	hb.SetHealthy(false)
	var fs families
	// pir_members is read from the Group at each scrape, while
	// pir_events_total counts what the Collector's listener has received,
	// which may come a moment later: wait for both.
	require.Eventually(t, func() bool {
		fs = gather(t, reg)
		return fs.value("pir_members", "verdict", "suspect") == 1 && fs.value("pir_events_total", "type", "health") >= 1
	}, waitFor, pollEvery)
	assert.Equal(t, 0.0, fs.value("pir_members", "verdict", "healthy"))
	assert.Less(t, fs.value("pir_member_health", "member", "b"), 1.0)
	assert.GreaterOrEqual(t, fs.value("pir_member_health", "member", "b"), 0.0)
	m, _ := fs.metric("pir_members")
	assert.Equal(t, "", label(m, "group"), "Config.Group empty: no group label")
}

// TestClose: once the Collector is closed, its Group's events are no longer
// counted, while its Stats still are.
func TestClose(t *testing.T) {
	l := newLab(t)
	a := l.join("a", l.health())
	l.join("b", l.health())
	require.Eventually(t, func() bool { return len(a.Members()) == 1 }, waitFor, pollEvery)

	c, err := pirprom.NewCollector(a, pirprom.Config{Group: "web"})
	require.NoError(t, err)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	// The listener's first event is a Joined for b, already a member.
	require.Eventually(t, func() bool {
		return gather(t, reg).value("pir_events_total", "type", "joined") == 1
	}, waitFor, pollEvery)

	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close is idempotent")
	l.join("x", l.health())
	require.Eventually(t, func() bool { return len(a.Members()) == 2 }, waitFor, pollEvery)
	// Closing the Group delivers every event queued for its listeners and
	// waits for them: had the Collector still listened, it would have
	// counted x by now.
	require.NoError(t, a.Close())
	fs := gather(t, reg)
	assert.Equal(t, 1.0, fs.value("pir_events_total", "type", "joined"))
	assert.GreaterOrEqual(t, fs.value("pir_probes_total", "result", "ok"), 2.0,
		"Stats are still read after Close")

	assert.True(t, reg.Unregister(c))
}

// TestLint checks the metrics' names, types, units and help against
// Prometheus's conventions.
func TestLint(t *testing.T) {
	l := newLab(t)
	probes, err := pirprom.NewProbeMetrics(pirprom.ProbeConfig{Group: "web"})
	require.NoError(t, err)
	a := l.join("a", l.health(), func(c *discovery.Config) {
		c.Prober = probes.Instrument(healthcheck.NewRegistry())
	})
	l.join("b", l.health())
	require.Eventually(t, func() bool { return len(a.Members()) == 1 }, waitFor, pollEvery)
	c, err := pirprom.NewCollector(a, pirprom.Config{Group: "web", MemberHealth: true})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	for name, col := range map[string]prometheus.Collector{"Collector": c, "ProbeMetrics": probes} {
		n := testutil.CollectAndCount(col)
		require.Positive(t, n, "%s collects nothing to lint", name)
		problems, err := testutil.CollectAndLint(col)
		require.NoError(t, err)
		assert.Empty(t, problems, "%s", name)
	}
	// Every metric the Collector describes, it collects, and the pedantic
	// registry checks each one against its descriptor.
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	require.NoError(t, reg.Register(probes))
	fs := gather(t, reg)
	for _, name := range []string{
		"pir_received_datagrams_total", "pir_decoded_datagrams_total", "pir_dropped_datagrams_total",
		"pir_sent_datagrams_total", "pir_send_errors_total", "pir_probes_total", "pir_events_total",
		"pir_departures_total", "pir_members", "pir_pending_peers", "pir_member_health",
		"pir_probe_duration_seconds", "pir_listener_events_lost_total", "pir_updates_held_total",
		"pir_confirmations_total", "pir_refutations_total", "pir_obituaries_total", "pir_pings_total",
		"pir_self_claims_refuted_total",
	} {
		assert.Contains(t, fs, name)
	}
}

// TestRegistry: one registry takes the Collectors of several Groups when
// their group labels differ, and refuses two with the same one.
func TestRegistry(t *testing.T) {
	l := newLab(t)
	a := l.join("a", l.health())
	b := l.join("b", l.health(), func(c *discovery.Config) { c.Name = "db" })
	reg := prometheus.NewPedanticRegistry()
	for _, x := range []struct {
		g     *discovery.Group
		label string
	}{{a, "web"}, {b, "db"}} {
		c, err := pirprom.NewCollector(x.g, pirprom.DefaultConfig(x.label))
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		require.NoError(t, reg.Register(c))
	}
	fs := gather(t, reg)
	assert.Len(t, fs["pir_pending_peers"].GetMetric(), 2)

	dup, err := pirprom.NewCollector(a, pirprom.DefaultConfig("web"))
	require.NoError(t, err)
	t.Cleanup(func() { dup.Close() })
	var already prometheus.AlreadyRegisteredError
	assert.ErrorAs(t, reg.Register(dup), &already)
}

func TestNewCollectorErrors(t *testing.T) {
	_, err := pirprom.NewCollector(nil, pirprom.Config{})
	assert.ErrorIs(t, err, pirprom.ErrInvalidConfig)

	l := newLab(t)
	a := l.join("a", l.health())
	_, err = pirprom.NewCollector(a, pirprom.Config{Group: "\xff"})
	assert.ErrorIs(t, err, pirprom.ErrInvalidConfig)
	assert.ErrorContains(t, err, "UTF-8")
}

func TestConfigValidate(t *testing.T) {
	assert.NoError(t, pirprom.DefaultConfig("web").Validate())
	assert.NoError(t, pirprom.Config{}.Validate())
	err := pirprom.Config{Group: "a\xffb"}.Validate()
	assert.True(t, errors.Is(err, pirprom.ErrInvalidConfig), "%v", err)
}

// TestPings: with the frugal engine (the default), a member's pings of the
// other and their acks are counted; when the other vanishes, a failed ping
// is too, and it leaves as failed.
func TestPings(t *testing.T) {
	l := newLab(t)
	frugal := func(c *discovery.Config) { c.PingInterval = 0; c.PingTimeout = 200 * time.Millisecond }
	a := l.join("a", l.health(), frugal)
	b := l.join("b", l.health(), frugal)
	c, err := pirprom.NewCollector(a, pirprom.Config{Group: "web"})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	url, client := serve(t, reg)
	require.Eventually(t, func() bool {
		fs := scrape(t, client, url)
		return fs.value("pir_pings_total", "result", "acked") >= 1
	}, waitFor, pollEvery)
	fs := scrape(t, client, url)
	assert.GreaterOrEqual(t, fs.value("pir_pings_total", "result", "sent"), fs.value("pir_pings_total", "result", "acked"))

	require.NoError(t, b.Close()) // vanished: no goodbye, its socket closed
	require.Eventually(t, func() bool {
		fs = scrape(t, client, url)
		return fs.value("pir_departures_total", "reason", "failed") == 1
	}, waitFor, pollEvery)
	assert.GreaterOrEqual(t, fs.value("pir_pings_total", "result", "failed"), 1.0)
	assert.Zero(t, fs.value("pir_probes_total", "result", "failed"), "b was not probed: pinged")
}
