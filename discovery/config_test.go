package discovery_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/score"
	"github.com/pirlan/pir/transport"
)

// Defaults derived from AnnounceInterval follow it when it is changed in
// DefaultConfig's result: LateAfter is 1.2 intervals, ExpireAfter ten.
func TestDerivedDefaultsFollowAnnounceInterval(t *testing.T) {
	c := discovery.DefaultConfig("web", nil)
	c.AnnounceInterval = 5 * time.Second
	d := c.WithDefaults()
	assert.Equal(t, 6*time.Second, d.LateAfter)
	assert.Equal(t, 50*time.Second, d.ExpireAfter)
	assert.Equal(t, c.ProbeInterval/4, d.SuspectProbeInterval)
	assert.Equal(t, 4*d.MaxPeers, d.MaxListenerQueue)
	phi, ok := d.Policy.(*score.PhiAccrual)
	require.True(t, ok, "the default policy")
	assert.Equal(t, 5*time.Second, phi.Config().ExpectedInterval)

	def := discovery.DefaultConfig("web", nil).WithDefaults()
	assert.Equal(t, 1200*time.Millisecond, def.LateAfter)
	assert.Equal(t, 10*time.Second, def.ExpireAfter)
	assert.Equal(t, 5*time.Second, def.CloseTimeout)
	assert.Equal(t, time.Second, def.PingInterval, "the frugal engine is the default")
	assert.Equal(t, 2*time.Second, def.HealthInterval)
}

// The same, as Join runs it: a member that stops announcing but still
// answers its probes expires after ten of its announce intervals (the
// threshold policy, which judges by probes only, lets expiry show). The
// legacy engine's expiry: a pinging member that stops is found by pings.
func TestJoinDerivesDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		slow := func(c *discovery.Config) {
			d := discovery.DefaultConfig("web", c.Transport)
			d.Self, d.Prober, d.ForeignHealthHosts = c.Self, c.Prober, c.ForeignHealthHosts
			d.AnnounceInterval, d.AnnounceJitter = 5*time.Second, -1
			d.PingInterval = -1
			*c = d
			thresholdPolicy(c)
		}
		a, _ := l.join("a", slow)
		b, _ := l.join("b", slow)
		synctest.Wait()
		rb := record(b)
		advance(20 * time.Second)
		m, ok := b.Member("a")
		require.True(t, ok)
		last := m.LastSeen
		require.NoError(t, a.Close()) // silent; its probe still answers
		for len(rb.of(discovery.Left, "a")) == 0 {
			advance(100 * time.Millisecond)
			require.Less(t, time.Since(last), time.Minute)
		}
		left := rb.of(discovery.Left, "a")[0]
		assert.Equal(t, discovery.Expired, left.Reason)
		assert.GreaterOrEqual(t, left.At.Sub(last), 50*time.Second)
		assert.Less(t, left.At.Sub(last), 51*time.Second)
	})
}

// Every problem Validate finds has a message of its own that names the
// field, and wraps ErrInvalidConfig.
func TestValidateNamesEachField(t *testing.T) {
	ok := func() discovery.Config {
		return discovery.Config{Name: "web", Self: discovery.Peer{ID: "a", HealthURI: healthURI("a")}, Transport: mustEndpoint(t)}
	}
	require.NoError(t, ok().Validate())
	for _, tc := range []struct {
		field  string
		mutate func(*discovery.Config)
	}{
		{"Name", func(c *discovery.Config) { c.Name = "" }},
		{"Name", func(c *discovery.Config) { c.Name = "a|b" }},
		{"Transport", func(c *discovery.Config) { c.Transport = nil }},
		{"Codec", func(c *discovery.Config) { c.Transport = noDefaultCodec{c.Transport} }},
		{"Self.ID", func(c *discovery.Config) { c.Self.ID = "a b" }},
		{"Self.ID", func(c *discovery.Config) { c.Self.ID = "a|b" }},
		{"Self.ID", func(c *discovery.Config) { c.Self.ID = "café" }},
		{"Self.ID", func(c *discovery.Config) { c.Self.ID = "a\x01" }},
		{"Self.ID", func(c *discovery.Config) { c.Self.ID = strings.Repeat("a", 300) }},
		{"Self.HealthURI", func(c *discovery.Config) { c.Self.HealthURI = nil }},
		{"Self.Meta", func(c *discovery.Config) { c.Self.Meta = map[string]string{"": "x"} }},
		{"AnnounceInterval", func(c *discovery.Config) { c.AnnounceInterval = -1 }},
		{"ProbeInterval", func(c *discovery.Config) { c.ProbeInterval = -1 }},
		{"ProbeTimeout", func(c *discovery.Config) { c.ProbeTimeout = -1 }},
		{"SuspectProbeInterval", func(c *discovery.Config) { c.SuspectProbeInterval = -1 }},
		{"ConfirmTimeout", func(c *discovery.Config) { c.ConfirmTimeout = -1 }},
		{"AnnounceJitter", func(c *discovery.Config) { c.AnnounceJitter = 1 }},
		{"MaxPeers", func(c *discovery.Config) { c.MaxPeers = -1 }},
		{"MaxPending", func(c *discovery.Config) { c.MaxPending = -1 }},
		{"MaxProbes", func(c *discovery.Config) { c.MaxProbes = -1 }},
		{"NewPeerBurst", func(c *discovery.Config) { c.NewPeerBurst = -1 }},
		{"ProbeFanout", func(c *discovery.Config) { c.ProbeFanout = -1 }},
		{"MaxListenerQueue", func(c *discovery.Config) { c.MaxListenerQueue = -1 }},
	} {
		c := ok()
		tc.mutate(&c)
		err := c.Validate()
		require.Error(t, err, tc.field)
		assert.ErrorIs(t, err, discovery.ErrInvalidConfig)
		msg := strings.TrimPrefix(err.Error(), discovery.ErrInvalidConfig.Error()+": ")
		assert.True(t, strings.HasPrefix(msg, tc.field+" "), "%q names %s first", msg, tc.field)
		assert.NotContains(t, msg, "\n", "one problem, one message")
	}
	for _, id := range []string{"a-b_1.x", "550e8400-e29b-41d4-a716-446655440000", "watch-x"} {
		c := ok()
		c.Self.ID = id
		assert.NoError(t, c.Validate(), id)
	}
	// Several problems at once: one message each.
	c := ok()
	c.ProbeInterval, c.ProbeTimeout, c.MaxPeers = -1, -1, -1
	var joined interface{ Unwrap() []error }
	require.True(t, errors.As(c.Validate(), &joined))
	assert.Len(t, joined.Unwrap(), 3)
}

// noDefaultCodec hides the transport's DefaultCodec.
type noDefaultCodec struct{ transport.Transport }

// A transport without a default codec needs Config.Codec; the codec's own
// limits, not pipe's, decide which names and IDs are valid.
func TestValidateAsksTheCodec(t *testing.T) {
	c := discovery.Config{Name: "web", Self: discovery.Peer{ID: "a", HealthURI: healthURI("a")}, Transport: noDefaultCodec{mustEndpoint(t)}}
	require.ErrorContains(t, c.Validate(), "Codec is nil")
	_, err := discovery.Join(context.Background(), c)
	require.ErrorIs(t, err, discovery.ErrInvalidConfig)

	c.Codec = pipe.Codec{}
	require.NoError(t, c.Validate())
	c.Self.ID = "a|b"
	require.ErrorContains(t, c.Validate(), "Self.ID")

	c.Codec = anyName{pipe.Codec{}} // a codec with no limits of its own
	c.Name = strings.Repeat("é|", 300)
	require.NoError(t, c.Validate())
}

// anyName is a codec that reports no name limits.
type anyName struct{ codec.Codec }

func TestJoinRefusesBadConfigAndClosesTransport(t *testing.T) {
	c := discovery.Config{Name: "web", Self: discovery.Peer{ID: "a b", HealthURI: healthURI("a")}, Transport: mustEndpoint(t)}
	_, err := discovery.Join(context.Background(), c)
	require.ErrorIs(t, err, discovery.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "Self.ID")
}

// WithDefaults of a Config with no Transport yet keeps PingInterval: only a
// Transport whose unicast is shared turns pings off (tools/sim builds its
// members' Configs so, and its frugal members stopped pinging when this
// rule looked at a nil Transport). Off is negative, so that a Config with
// defaults stays off when its defaults are filled in again.
func TestWithDefaultsKeepsPingsWithoutTransport(t *testing.T) {
	c := discovery.DefaultConfig("web", nil)
	c.PingInterval = 2 * time.Second
	assert.Equal(t, 2*time.Second, c.WithDefaults().PingInterval)
	c.Transport = sharedUnicast{}
	d := c.WithDefaults()
	assert.Negative(t, d.PingInterval)
	assert.Negative(t, d.WithDefaults().PingInterval)
}
