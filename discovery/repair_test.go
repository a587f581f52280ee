package discovery_test

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/score"
	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/mem"
)

// dualStack is a member's transport with two sockets on the LAN, standing
// for its IPv4 and IPv6 ones: its announcements go out on both, each
// carrying that link's address, and its unicast (pings, acks) goes from
// the first. Which copy arrives first varies, as on real sockets: IPv4
// first until turns is set, then each in turn.
type dualStack struct {
	*mem.Endpoint               // the IPv4 socket: receives, unicast
	v6            *mem.Endpoint // the IPv6 socket: multicast only
	links         []transport.Link
	turns         atomic.Bool
	sends         atomic.Int64
}

func (d *dualStack) Links() []transport.Link {
	if d.turns.Load() && d.sends.Add(1)%2 == 0 {
		return []transport.Link{d.links[1], d.links[0]}
	}
	return d.links
}

func (d *dualStack) SendVia(b []byte, l transport.Link) error {
	if l.Addr.Is6() {
		return d.v6.Send(b)
	}
	return d.Endpoint.Send(b)
}

// newDualStack joins the two sockets of a member whose links have the
// addresses v4 and v6.
func (l *lab) newDualStack(v4, v6 netip.Addr) *dualStack {
	d := &dualStack{Endpoint: l.lan.Join(), v6: l.lan.Join(), links: []transport.Link{
		{Index: 2, Name: "v4", Addr: v4},
		{Index: 3, Name: "v6", Addr: v6},
	}}
	l.t.Cleanup(func() { d.v6.Close() })
	return d
}

// joinDualStack starts the pinging member name on d, listening on every
// address ([::]).
func (l *lab) joinDualStack(name string, d *dualStack) *discovery.Group {
	l.t.Helper()
	go func() { // nobody reads the IPv6 socket but this
		buf := make([]byte, 2048)
		for {
			if _, err := d.v6.Receive(buf); err != nil {
				return
			}
		}
	}()
	for _, k := range d.links {
		l.health.set(netip.AddrPortFrom(k.Addr, 4000).String(), up)
	}
	l.health.set("[::1]:4000", up) // its self-checks, over loopback
	g, err := discovery.Join(context.Background(), discovery.Config{
		Name: "web", Transport: d, Prober: l.health, ForeignHealthHosts: true,
		PingInterval: time.Second,
		Self:         discovery.Peer{ID: name, HealthURI: &url.URL{Scheme: "tcp", Host: "[::]:4000"}},
	})
	require.NoError(l.t, err)
	l.t.Cleanup(func() { g.Close() })
	return g
}

// TestPingingMemberKeepsItsPath: a pinging member heard by two paths (its
// IPv4 and IPv6 sockets), announcing once per T(N), keeps the path it was
// first known by for ten minutes: its acks keep that path heard, and the
// path's silence is judged by the member's own pace. Before the fix its
// path flipped, with an Updated event, at almost every announcement.
func TestPingingMemberKeepsItsPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		d := l.newDualStack(netip.MustParseAddr("198.18.0.7"), netip.MustParseAddr("fd42::7"))
		a, _ := l.join("a", pinging, func(c *discovery.Config) {
			c.Transport = secondPath{Endpoint: c.Transport.(*mem.Endpoint), from: d.v6.Addr()}
		})
		ra := record(a)
		l.joinDualStack("p", d)
		waitMembers(t, 1, a)
		m, ok := a.Member("p")
		require.True(t, ok)
		require.Equal(t, "tcp://198.18.0.7:4000", m.HealthURI.String())
		d.turns.Store(true)
		advance(10 * time.Minute)
		m, ok = a.Member("p")
		require.True(t, ok)
		assert.Equal(t, "tcp://198.18.0.7:4000", m.HealthURI.String(), "still known by its first path")
		assert.Empty(t, ra.of(discovery.Updated, "p"), "no flap between the paths")
		assert.NotZero(t, a.Stats().AcksReceived)
	})
}

// deaf wraps a member's endpoint so that, while on is set, it hears no
// multicast from the addresses in from (every address when from is empty):
// it misses announcements, queries, reports and vouches, not unicast. It
// counts what it dropped, by source.
type deaf struct {
	*mem.Endpoint
	on      *atomic.Bool
	from    []netip.AddrPort
	mu      *sync.Mutex
	dropped map[netip.AddrPort]int
}

func (d deaf) Receive(buf []byte) (transport.Packet, error) {
	for {
		p, err := d.Endpoint.Receive(buf)
		if err != nil || !d.on.Load() || !p.Dst.IsMulticast() || len(d.from) > 0 && !slices.Contains(d.from, p.Src) {
			return p, err
		}
		d.mu.Lock()
		d.dropped[p.Src]++
		d.mu.Unlock()
	}
}

func (d deaf) droppedFrom(src netip.AddrPort) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dropped[src]
}

// deafen makes a member deaf (see deaf) while on is set.
func deafen(on *atomic.Bool, d *deaf, from ...netip.AddrPort) func(*discovery.Config) {
	return func(c *discovery.Config) {
		*d = deaf{Endpoint: c.Transport.(*mem.Endpoint), on: on, from: from, mu: new(sync.Mutex), dropped: map[netip.AddrPort]int{}}
		c.Transport = *d
	}
}

// firstProber is the first prober of peer among members, by
// discovery.ProbeRank.
func firstProber(peer string, members ...string) string {
	best := members[0]
	for _, m := range members[1:] {
		if r, b := discovery.ProbeRank(peer, m), discovery.ProbeRank(peer, best); r < b || r == b && m < best {
			best = m
		}
	}
	return best
}

// TestMissedJoinRepaired: a member that heard neither a newcomer's query
// nor the vouch for it (it hears no multicast at all) lists the newcomer
// within one round of the newcomer's pings: the newcomer, which learned it
// by transfer, pings it; it acks with who=1; the newcomer tells it who it
// is by unicast, and it admits the newcomer with one probe of its own.
func TestMissedJoinRepaired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newPingLab(t)
		var off atomic.Bool
		var dc deaf
		a, _ := l.join("a", pinging)
		b, _ := l.join("b", pinging)
		c, _ := l.join("c", pinging, deafen(&off, &dc))
		waitMembers(t, 2, a, b, c)
		rc := record(c)
		// A newcomer c would probe first anyway is admitted without the
		// repair: pick one whose first prober is another. Its name is
		// long enough for an offer to answer its query (transfer.go).
		name := "newcomer-0"
		for i := 1; firstProber(name, "a", "b", "c") == "c"; i++ {
			name = fmt.Sprintf("newcomer-%d", i)
		}
		off.Store(true)
		started := time.Now()
		n, nep := l.join(name, pinging)
		waitMembers(t, 3, a, b, n)
		// The newcomer's first ping comes within a PingInterval, and its
		// first round has three: c's turn is at most 3 s after its start.
		for time.Since(started) <= 3*time.Second && len(c.Members()) < 3 {
			advance(100 * time.Millisecond)
		}
		joined := rc.of(discovery.Joined, name)
		require.Len(t, joined, 1, "c lists the newcomer within a round of its pings")
		assert.LessOrEqual(t, joined[0].At.Sub(started), 3*time.Second)
		assert.NotZero(t, dc.droppedFrom(nep.Addr()), "c heard not the newcomer's query")
		assert.True(t, off.Load())
		assert.Len(t, c.Members(), 3)
	})
}

// TestMissedUpdateRepaired: a member that missed both copies of another's
// health report learns it within one round of pings, by the record version
// pings and acks carry: it asks the member by a unicast query, and the
// member answers with its announcement.
func TestMissedUpdateRepaired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newPingLab(t)
		var off atomic.Bool
		var db deaf
		x, xep := l.join("x", selfChecking, func(c *discovery.Config) { c.HealthInterval = time.Minute })
		a, _ := l.join("a", selfChecking)
		b, _ := l.join("b", selfChecking, deafen(&off, &db, xep.Addr()))
		waitMembers(t, 2, x, a, b)
		advance(5 * time.Second)
		ra, rb := record(a), record(b)
		off.Store(true)
		l.health.set("x:1", refuse)
		// x's first self-check since its start fails, and x reports it.
		for range 700 {
			if len(ra.of(discovery.HealthChanged, "x")) > 0 {
				break
			}
			advance(100 * time.Millisecond)
		}
		reported := ra.of(discovery.HealthChanged, "x")
		require.NotEmpty(t, reported, "a heard the report")
		l.health.set("x:1", up) // the next check is a minute away
		// b pings x, and x pings b, at least once in three seconds: two
		// members each, in rounds shuffled anew (one at the start of a
		// round, the next at the end of the next).
		for time.Since(reported[0].At) <= 3*time.Second && len(rb.of(discovery.HealthChanged, "x")) == 0 {
			advance(100 * time.Millisecond)
		}
		hc := rb.of(discovery.HealthChanged, "x")
		require.NotEmpty(t, hc, "b learned the report within a round of pings")
		assert.Equal(t, score.Suspect, hc[0].Member.Verdict)
		assert.LessOrEqual(t, hc[0].At.Sub(reported[0].At), 3*time.Second)
		assert.GreaterOrEqual(t, db.droppedFrom(xep.Addr()), 2, "b heard neither copy of the report")
		assert.True(t, off.Load())
	})
}

// TestConcurrentStartRepaired reproduces the gap of pirbench's first run
// with pings (docs/design/frugal.md, section 5): members started 1 ms apart
// learn the table by transfer while others are still being admitted at
// the member that offers it, and the periodic announcement that would
// repair the gap is far away. Pings repair it: every member lists every
// other within N − 1 rounds of pings.
func TestConcurrentStartRepaired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newPingLab(t)
		const n = 10
		gs := make([]*discovery.Group, n)
		for i := range gs {
			gs[i], _ = l.join(fmt.Sprintf("member-%02d", i), pinging, func(c *discovery.Config) {
				// Periodic announcements minutes apart: T(N) = N / 0.01 s.
				// (A long AnnounceInterval would keep every member
				// "starting", probing whatever it hears, for a quarter
				// of it: admit.go.)
				c.AnnounceRate = 0.01
				c.Prober = slowProber{inner: l.health, d: 20 * time.Millisecond}
			})
			advance(time.Millisecond)
		}
		started := time.Now()
		rounds := (n - 1) * (n - 1) * time.Second // N − 1 rounds of N − 1 pings a second
		all := func() bool {
			for _, g := range gs {
				if len(g.Members()) != n-1 {
					return false
				}
			}
			return true
		}
		for time.Since(started) < rounds && !all() {
			advance(100 * time.Millisecond)
		}
		for i, g := range gs {
			assert.Len(t, g.Members(), n-1, "member-%02d lists %v", i, ids(g.Members()))
		}
		t.Logf("all listed after %v", time.Since(started))
	})
}

// slowProber answers as inner does, d later: a probe over a LAN takes time,
// during which other members join.
type slowProber struct {
	inner *fakeHealth
	d     time.Duration
}

func (s slowProber) Supports(scheme string) bool { return s.inner.Supports(scheme) }

func (s slowProber) Probe(ctx context.Context, target *url.URL) error {
	select {
	case <-time.After(s.d):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.inner.Probe(ctx, target)
}
