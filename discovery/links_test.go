package discovery_test

import (
	"context"
	"net/netip"
	"net/url"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/mem"
)

// linked gives a mem endpoint interfaces, as a multicast transport has.
type linked struct {
	*mem.Endpoint
	links []transport.Link
	vias  map[string]int
}

func (l *linked) Links() []transport.Link { return l.links }

func (l *linked) SendVia(b []byte, link transport.Link) error {
	l.vias[link.Name]++
	return l.Endpoint.Send(b)
}

// A member listening on 0.0.0.0 announces, on each interface, that
// interface's address.
func TestUnspecifiedHostAnnouncedPerLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		b, _ := l.join("b")
		tr := &linked{Endpoint: l.lan.Join(), vias: map[string]int{}, links: []transport.Link{
			{Index: 2, Name: "eth0", Addr: netip.MustParseAddr("198.18.0.7")},
			{Index: 3, Name: "eth1", Addr: netip.MustParseAddr("fd42::7")}, // not for an IPv4 listener
			{Index: 4, Name: "eth2"}, // no address yet
		}}
		l.health.set("198.18.0.7:4000", up)
		a, err := discovery.Join(context.Background(), discovery.Config{
			Name: "web", Transport: tr, Prober: l.health,
			Self: discovery.Peer{ID: "a", HealthURI: &url.URL{Scheme: "tcp", Host: "0.0.0.0:4000"}},
			// Announcing every second (the legacy engine), so that five
			// seconds show five announcements on each link.
			PingInterval: -1,
		})
		require.NoError(t, err)
		defer a.Close()
		rb := record(b)
		advance(5 * time.Second)
		m, ok := b.Member("a")
		require.True(t, ok)
		assert.Equal(t, "tcp://198.18.0.7:4000", m.HealthURI.String())
		assert.Equal(t, "tcp://0.0.0.0:4000", a.Self().HealthURI.String(), "Self keeps what was given")
		assert.Empty(t, rb.of(discovery.Updated, "a"))
		assert.GreaterOrEqual(t, tr.vias["eth0"], 5)
		assert.Zero(t, tr.vias["eth1"]+tr.vias["eth2"])
	})
}

// A link-local address means nothing without the interface: the receiver
// names its own interface, the one the announcement came in on.
func TestLinkLocalZoneIsTheReceivers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		b, _ := l.join("b")
		tr := &linked{Endpoint: l.lan.Join(), vias: map[string]int{}, links: []transport.Link{
			{Index: 9, Name: "wlan0", Addr: netip.MustParseAddr("fe80::7%wlan0")},
		}}
		l.health.set("[fe80::7%1]:4000", up) // mem delivers on interface 1
		a, err := discovery.Join(context.Background(), discovery.Config{
			Name: "web", Transport: tr, Prober: l.health,
			Self: discovery.Peer{ID: "a", HealthURI: &url.URL{Scheme: "tcp", Host: "[::]:4000"}},
		})
		require.NoError(t, err)
		defer a.Close()
		synctest.Wait()
		m, ok := b.Member("a")
		require.True(t, ok, "probed at its zoned address")
		assert.Equal(t, "[fe80::7%1]:4000", m.HealthURI.Host)
		assert.Equal(t, "fe80::7%1", m.HealthURI.Hostname())
	})
}

func TestUnspecifiedHostNeedsLinks(t *testing.T) {
	_, err := discovery.Join(context.Background(), discovery.Config{
		Name: "web", Transport: mustEndpoint(t),
		Self: discovery.Peer{HealthURI: &url.URL{Scheme: "tcp", Host: "0.0.0.0:4000"}},
	})
	assert.ErrorIs(t, err, discovery.ErrInvalidConfig)
}
