package discovery

import (
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/transport/mem"
)

// The per-source records stay bounded however many addresses a flood
// sprays, and those with probes running are kept.
func TestSourceRecordsBounded(t *testing.T) {
	g := idleGroup(t)

	now := time.Now()
	busy := netip.MustParseAddr("10.255.0.1")
	g.source(busy, now).inflight = 1
	for i := range 3 * maxSources {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		r := g.source(a, now)
		r.failed = g.at(now)
		require.LessOrEqual(t, len(g.adm.sources), maxSources)
	}
	assert.Contains(t, g.adm.sources, busy, "a source with a probe running is kept")
}

// A peer's and a member's IDs are ranked as a pair: moving bytes from one
// to the other gives another rank.
func TestProbeRankSeparatesIDs(t *testing.T) {
	assert.NotEqual(t, probeRank("xab", "c"), probeRank("xa", "bc"))
	assert.NotEqual(t, probeRank("x", "m1"), probeRank("m1", "x"))
	assert.Equal(t, probeRank("x", "m1"), probeRank("x", "m1"))
}

// idleGroup returns a Group with the default settings on an in-memory LAN,
// none of whose goroutines run: a test drives its owner's methods itself.
func idleGroup(t *testing.T) *Group {
	t.Helper()
	lan, err := mem.NewLAN(mem.Config{})
	require.NoError(t, err)
	cfg := Config{Name: "abc", Transport: lan.Join(),
		Self: Peer{ID: "self", HealthURI: &url.URL{Scheme: "tcp", Host: "198.18.0.1:1"}}}
	cfg.setDefaults()
	g := newGroup(cfg)
	t.Cleanup(func() { g.Close() })
	return g
}
