package discovery_test

import (
	"context"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/mem"
)

// dualStack is a member's transport with two sockets on the LAN, standing
// for its IPv4 and IPv6 ones: its announcements go out on both, each
// carrying that link's address, and its unicast (pings, acks) goes from
// the first. Which copy arrives first varies, as on real sockets: IPv4
// first for the first message (the query), then each in turn.
type dualStack struct {
	*mem.Endpoint               // the IPv4 socket: receives, unicast
	v6            *mem.Endpoint // the IPv6 socket: multicast only
	links         []transport.Link
	sends         atomic.Int64
}

func (d *dualStack) Links() []transport.Link {
	if d.sends.Add(1)%2 == 0 {
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
		advance(10 * time.Minute)
		m, ok = a.Member("p")
		require.True(t, ok)
		assert.Equal(t, "tcp://198.18.0.7:4000", m.HealthURI.String(), "still known by its first path")
		assert.Empty(t, ra.of(discovery.Updated, "p"), "no flap between the paths")
		assert.NotZero(t, a.Stats().AcksReceived)
	})
}
