package memberlist_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	hml "github.com/hashicorp/memberlist"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/auth"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/mem"
	"github.com/pirlan/pir/transport/transporttest"

	"github.com/pirlan/pir/plugins/memberlist"
)

// The unit tests run memberlist on 127.0.0.1 in this process's network
// namespace: unicast on loopback, which never leaves the machine. The LANs
// are in-memory (transport/mem).

// waitFor bounds every wait: generous, since a test fails only when one
// runs out.
const waitFor = 15 * time.Second

var loopback = netip.MustParseAddrPort("127.0.0.1:0")

// start starts a Conn, closed when the test ends.
func start(t *testing.T, cfg memberlist.Config) *memberlist.Conn {
	t.Helper()
	if !cfg.Bind.IsValid() {
		cfg.Bind = loopback
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := memberlist.New(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitNodes waits until every Conn knows n other nodes.
func waitNodes(t *testing.T, n int, conns ...*memberlist.Conn) {
	t.Helper()
	for _, c := range conns {
		require.Eventually(t, func() bool { return c.Stats().Nodes == n }, waitFor, 10*time.Millisecond,
			"%s knows %d nodes, want %d: %+v", c.Name(), c.Stats().Nodes, n, c.Nodes())
	}
}

// sites makes n Conns, member i on site "A" for even i and "B" for odd i,
// each site an in-memory LAN, all seeded with the first.
func sites(t *testing.T, n int, cfg memberlist.Config) []*memberlist.Conn {
	t.Helper()
	lans := map[string]*mem.LAN{}
	for _, s := range []string{"A", "B"} {
		lan, err := mem.NewLAN(mem.Config{Loopback: true})
		require.NoError(t, err)
		lans[s] = lan
	}
	var conns []*memberlist.Conn
	for i := range n {
		c := cfg
		c.Site = []string{"A", "B"}[i%2]
		c.Inner = lans[c.Site].Join()
		if i > 0 {
			c.Seeds = []string{conns[0].Addr().String()}
		}
		conns = append(conns, start(t, c))
	}
	waitNodes(t, n-1, conns...)
	return conns
}

func transports(conns []*memberlist.Conn) []transport.Transport {
	out := make([]transport.Transport, len(conns))
	for i, c := range conns {
		out[i] = c
	}
	return out
}

func TestConformance(t *testing.T) {
	t.Run("memberlist only", func(t *testing.T) {
		leakCheck(t)
		transporttest.Run(t, func(t *testing.T, n int) []transport.Transport {
			var conns []*memberlist.Conn
			for i := range n {
				var cfg memberlist.Config
				if i > 0 {
					cfg.Seeds = []string{conns[0].Addr().String()}
				}
				conns = append(conns, start(t, cfg))
			}
			waitNodes(t, n-1, conns...)
			return transports(conns)
		})
	})
	t.Run("two sites", func(t *testing.T) {
		leakCheck(t)
		transporttest.Run(t, func(t *testing.T, n int) []transport.Transport {
			return transports(sites(t, n, memberlist.Config{}))
		})
	})
}

// TestRelayOnlyToOtherSites: members of one site hear each other on their
// LAN and get no relayed copies from each other; a member of another site
// gets exactly one copy.
func TestRelayOnlyToOtherSites(t *testing.T) {
	leakCheck(t)
	c := sites(t, 3, memberlist.Config{}) // A, B, A
	a0, b1, a2 := c[0], c[1], c[2]
	assert.Equal(t, 1, a0.Stats().Remote)
	assert.Equal(t, 2, b1.Stats().Remote)
	for _, n := range a0.Nodes() {
		assert.Equal(t, n.Site == "B", n.Remote, "%+v", n)
		assert.Equal(t, n.Addr.Addr(), n.Relay.Addr())
	}

	require.NoError(t, a0.Send([]byte("from a0")))
	buf := make([]byte, 100)
	for _, r := range []*memberlist.Conn{b1, a2} {
		var srcs []netip.AddrPort
		for len(srcs) < 1 {
			p, err := r.Receive(buf)
			require.NoError(t, err)
			if string(buf[:p.N]) == "from a0" {
				srcs = append(srcs, p.Src)
			}
		}
		if r == b1 {
			assert.Equal(t, a0.RelayAddr(), srcs[0], "relayed from a0's relay address")
		} else {
			assert.NotEqual(t, a0.RelayAddr(), srcs[0], "heard on the LAN")
		}
	}
	// Relays counted on the sending side go to b1 only.
	assert.Equal(t, uint64(1), a0.Stats().RelaySent)
	assert.Zero(t, a2.Stats().RelayReceived)

	// A marker from b1 is relayed to both; a2 gets it, and never a second
	// copy of a0's datagram before it.
	require.NoError(t, b1.Send([]byte("marker")))
	for {
		p, err := a2.Receive(buf)
		require.NoError(t, err)
		require.NotEqual(t, "from a0", string(buf[:p.N]), "a second copy of a0's datagram")
		if string(buf[:p.N]) == "marker" {
			assert.Equal(t, b1.RelayAddr(), p.Src)
			break
		}
	}
}

// member is a discovery.Group on a Conn, with a health server of its own
// and the events it saw.
type member struct {
	id     string
	g      *discovery.Group
	hc     *healthcheck.TCPServer
	conn   *memberlist.Conn
	events chan discovery.Event
}

// groupConfig is a pir config with short timings, for fast tests.
func groupConfig(t *testing.T) discovery.Config {
	cfg := discovery.DefaultConfig("sites", nil)
	cfg.AnnounceInterval = 100 * time.Millisecond
	cfg.ProbeInterval = 100 * time.Millisecond
	cfg.SuspectProbeInterval = 50 * time.Millisecond
	cfg.ProbeTimeout = time.Second
	cfg.ExpireAfter = -1 // a crash is seen by failed probes, not silence
	cfg.Logger = nil
	return cfg
}

func joinGroup(t *testing.T, id string, conn *memberlist.Conn, cfg discovery.Config) *member {
	t.Helper()
	m := &member{id: id, conn: conn, events: make(chan discovery.Event, 256)}
	m.hc = healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	require.NoError(t, m.hc.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = m.hc.Close() })
	cfg.Self = discovery.Peer{ID: id, HealthURI: m.hc.URI(), Meta: map[string]string{"site": id[:1], "me": id}}
	cfg.Transport = conn
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	g, err := discovery.Join(ctx, cfg)
	require.NoError(t, err)
	m.g = g
	t.Cleanup(func() { _ = g.Close() })
	g.AddListener(func(e discovery.Event) bool {
		select {
		case m.events <- e:
		default:
			t.Errorf("%s: event queue full", id)
		}
		return true
	})
	return m
}

// waitEvent waits for an event of m's for which match is true.
func (m *member) waitEvent(t *testing.T, what string, match func(discovery.Event) bool) discovery.Event {
	t.Helper()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	for {
		select {
		case e := <-m.events:
			if match(e) {
				return e
			}
		case <-timer.C:
			t.Fatalf("%s: no %s within %v; members %v", m.id, what, waitFor, m.g.Members())
		}
	}
}

// waitMembers waits until m has exactly the members ids.
func (m *member) waitMembers(t *testing.T, ids ...string) {
	t.Helper()
	slices.Sort(ids)
	require.Eventually(t, func() bool {
		var got []string
		for _, x := range m.g.Members() {
			got = append(got, x.ID)
		}
		return slices.Equal(got, ids)
	}, waitFor, 10*time.Millisecond, "%s: members %v, want %v", m.id, m.g.Members(), ids)
}

// TestGroupAcrossSites: pir groups on two in-memory LANs, bridged by
// memberlist, see each other's members with their URIs and metadata, with
// the original codec and with authenticated envelopes; a goodbye crosses,
// and so does a crash, detected by failed probes.
func TestGroupAcrossSites(t *testing.T) {
	keys, err := auth.ParseKeyring(strings.NewReader("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"))
	require.NoError(t, err)
	codecs := map[string]func() codec.Codec{
		"pipe": func() codec.Codec { return pipe.Codec{} },
		// Each member is a sender of its own, with its own sequence.
		"auth": func() codec.Codec {
			c, err := auth.New(pipe.Codec{}, auth.Config{Keys: keys})
			require.NoError(t, err)
			return c
		},
	}
	for name, newCodec := range codecs {
		t.Run(name, func(t *testing.T) {
			leakCheck(t)
			conns := sites(t, 4, memberlist.Config{})
			ids := []string{"A0", "B1", "A2", "B3"}
			var ms []*member
			for i, c := range conns {
				cfg := groupConfig(t)
				cfg.Codec = newCodec()
				ms = append(ms, joinGroup(t, ids[i], c, cfg))
			}
			for _, m := range ms {
				var others []string
				for _, id := range ids {
					if id != m.id {
						others = append(others, id)
					}
				}
				m.waitMembers(t, others...)
			}
			// B1 sees A0 with its URI and metadata, from A0's relay address.
			a0, ok := ms[1].g.Member("A0")
			require.True(t, ok)
			assert.Equal(t, ms[0].hc.URI().String(), a0.HealthURI.String())
			assert.Equal(t, map[string]string{"site": "A", "me": "A0"}, a0.Meta)
			assert.Equal(t, conns[0].RelayAddr(), a0.Addr)
			// A2 sees A0 on the LAN.
			a0, ok = ms[2].g.Member("A0")
			require.True(t, ok)
			assert.NotEqual(t, conns[0].RelayAddr(), a0.Addr)

			// A goodbye crosses the sites.
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			require.NoError(t, ms[2].g.Leave(ctx))
			for _, i := range []int{1, 3} {
				e := ms[i].waitEvent(t, "A2's goodbye", func(e discovery.Event) bool {
					return e.Type == discovery.Left && e.Member.ID == "A2"
				})
				assert.Equal(t, discovery.Goodbye, e.Reason)
			}

			// A crash: A0's health server and its transport stop, without
			// a word; B1 and B3 see it fail.
			require.NoError(t, ms[0].hc.Close())
			require.NoError(t, ms[0].g.Close())
			for _, i := range []int{1, 3} {
				e := ms[i].waitEvent(t, "A0 leaving", func(e discovery.Event) bool {
					return e.Type == discovery.Left && e.Member.ID == "A0"
				})
				assert.Equal(t, discovery.Failed, e.Reason)
			}
			ms[1].waitMembers(t, "B3")

			// Relayed envelopes stay authentic, and the relay adds no
			// copy that an auth codec would refuse as a replay.
			for _, m := range []*member{ms[1], ms[3]} {
				st := m.g.Stats()
				for _, r := range []discovery.DropReason{discovery.DropBadTag, discovery.DropUnknownKey,
					discovery.DropUnauthenticated, discovery.DropMalformed, discovery.DropStale, discovery.DropReplay} {
					assert.Zero(t, st.Dropped[r], "%s: %v", m.id, r)
				}
			}
		})
	}
}

// TestSeedsLate: a member whose seed is not up yet starts anyway, and
// joins when the seed appears.
func TestSeedsLate(t *testing.T) {
	leakCheck(t)
	port := freePort(t)
	seed := netip.AddrPortFrom(loopback.Addr(), port)
	a := start(t, memberlist.Config{Seeds: []string{seed.String()}, RejoinInterval: 50 * time.Millisecond})
	assert.Equal(t, 0, a.Stats().Nodes)
	assert.GreaterOrEqual(t, a.Stats().JoinErrors, uint64(1), "the seed refused")

	b := start(t, memberlist.Config{Bind: seed})
	waitNodes(t, 1, a, b)
	// A seed that is this node is skipped; b has none other.
	assert.Zero(t, b.Stats().Joins)
}

// freePort returns a port free for TCP and UDP on 127.0.0.1 a moment ago.
func freePort(t *testing.T) uint16 {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return uint16(port)
		}
	}
	t.Fatal("no free port")
	return 0
}

// TestCloseWhileJoining: Close does not wait out a join to a seed that
// does not answer.
func TestCloseWhileJoining(t *testing.T) {
	leakCheck(t)
	// A listener that never accepts: the join's TCP connect succeeds
	// (backlog) but the push/pull waits for an answer.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	mc := hml.DefaultLANConfig()
	mc.TCPTimeout = time.Minute
	c, err := memberlist.New(ctx, memberlist.Config{Bind: loopback, Seeds: []string{l.Addr().String()}, Memberlist: mc})
	require.NoError(t, err, "a start that ends before the first join is not an error")
	start := time.Now()
	require.NoError(t, c.Close())
	took := time.Since(start)
	t.Logf("Close took %v", took)
	assert.Less(t, took, 30*time.Second, "Close waited out the join's TCP timeout")
}

func TestCloseAndErrors(t *testing.T) {
	leakCheck(t)
	lan, err := mem.NewLAN(mem.Config{Loopback: true})
	require.NoError(t, err)
	inner := lan.Join()
	c := start(t, memberlist.Config{Inner: inner, Site: "A", LeaveTimeout: -1})

	err = c.Send(make([]byte, transport.MaxDatagram+1))
	require.ErrorIs(t, err, transport.ErrTooLarge)
	require.ErrorIs(t, c.SendTo(make([]byte, transport.MaxDatagram+1), netip.MustParseAddrPort("127.0.0.1:9")), transport.ErrTooLarge)

	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	require.ErrorIs(t, inner.Send([]byte("x")), transport.ErrClosed, "Close closes Inner")
	require.ErrorIs(t, c.Send([]byte("x")), net.ErrClosed)
	_, err = c.Receive(make([]byte, 10))
	require.ErrorIs(t, err, transport.ErrClosed)
}

func TestNewFailureClosesInner(t *testing.T) {
	leakCheck(t)
	lan, err := mem.NewLAN(mem.Config{Loopback: true})
	require.NoError(t, err)
	inner := lan.Join()
	_, err = memberlist.New(context.Background(), memberlist.Config{Inner: inner, Bind: loopback})
	require.ErrorIs(t, err, memberlist.ErrInvalidConfig)
	require.ErrorContains(t, err, "Site")
	require.ErrorIs(t, inner.Send([]byte("x")), transport.ErrClosed)

	// A port in use.
	c := start(t, memberlist.Config{})
	_, err = memberlist.New(context.Background(), memberlist.Config{Bind: c.Addr()})
	require.Error(t, err)
	t.Log(err)
}

func TestValidate(t *testing.T) {
	inner := struct{ transport.Transport }{}
	for name, c := range map[string]memberlist.Config{
		"no bind":             {},
		"inner without site":  {Inner: inner, Bind: loopback},
		"site too long":       {Bind: loopback, Site: string(make([]byte, memberlist.MaxSite+1))},
		"site control":        {Bind: loopback, Site: "a\nb"},
		"unspecified bind":    {Bind: netip.MustParseAddrPort("0.0.0.0:7946")},
		"zoned bind":          {Bind: netip.MustParseAddrPort("[fe80::1%eth0]:7946")},
		"advertise family":    {Bind: loopback, Advertise: netip.MustParseAddrPort("[fd42::1]:7946")},
		"advertise port only": {Bind: loopback, Advertise: netip.AddrPortFrom(netip.Addr{}, 7946)},
		"relay port":          {Bind: loopback, RelayPort: 70000},
		"empty seed":          {Bind: loopback, Seeds: []string{" "}},
		"key":                 {Bind: loopback, SecretKey: []byte("short")},
		"max datagram":        {Bind: loopback, MaxDatagram: 70000},
		"queue":               {Bind: loopback, QueueLen: -1},
		"name":                {Bind: loopback, Name: "a\x00b"},
	} {
		err := c.Validate()
		assert.ErrorIs(t, err, memberlist.ErrInvalidConfig, name)
	}
	assert.NoError(t, memberlist.DefaultConfig(inner, "A", loopback).Validate())
	assert.NoError(t, memberlist.Config{Bind: netip.MustParseAddrPort("0.0.0.0:0"), Advertise: netip.MustParseAddrPort("198.18.0.1:0")}.Validate())

	err := memberlist.Config{Inner: inner, RelayPort: -1}.Validate()
	var joined interface{ Unwrap() []error }
	require.True(t, errors.As(err, &joined), "%v", err)
	assert.Len(t, joined.Unwrap(), 3, "every problem at once: %v", err)
	assert.ErrorIs(t, err, memberlist.ErrInvalidConfig)
}
