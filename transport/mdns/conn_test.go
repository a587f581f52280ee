package mdns

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/internal/netlab"
)

// Two Conns publish their members and each hands Receive the other's
// announcement, with its URIs and metadata, from the responder's address
// on port 5353 (here the test's port) and lo's index; a Goodbye withdraws
// a member and the other delivers a goodbye for it.
func TestMDNSTwoConnsSeeEachOther(t *testing.T) {
	for _, network := range []string{"udp4", "udp6", ""} {
		t.Run("network="+network, func(t *testing.T) {
			netlab.Require(t)
			if network != "udp4" {
				netlab.RequireIPv6(t)
			}
			leakCheck(t)
			port := freePort(t)
			a := open(t, Config{Port: port, Network: network})
			b := open(t, Config{Port: port, Network: network})
			ma, mb := member("a", 1001), member("b", 1002)
			ma.Meta = map[string]string{"role": "db", "Zone": "eu west"}
			a.send(ma)
			b.send(mb)

			lo, err := net.InterfaceByName(netlab.Loopback)
			require.NoError(t, err)
			g := b.waitMsg("a's announcement", announceOf("a"))
			assert.Equal(t, "test", g.msg.Group)
			assert.Equal(t, ma.Health, g.msg.Health)
			assert.Equal(t, ma.Comms, g.msg.Comms)
			assert.Equal(t, ma.Meta, g.msg.Meta)
			assert.Equal(t, port, g.pkt.Src.Port(), "the responder's port")
			assert.Equal(t, lo.Index, g.pkt.IfIndex)
			g = a.waitMsg("b's announcement", announceOf("b"))
			assert.Equal(t, mb.Health, g.msg.Health)
			assert.Nil(t, g.msg.Meta)

			// A heartbeat repeats the announcement while the records live.
			last := b.waitMsg("a's announcement again", announceOf("a"))

			a.send(codec.Message{Kind: codec.Goodbye, Group: "test", ID: "a"})
			bye := b.waitMsg("a's goodbye", goodbyeOf("a"))
			// A Group takes a goodbye only from where the member announces.
			assert.Equal(t, last.pkt.Src, bye.pkt.Src, "the goodbye comes from where the announcements came")
			assert.Equal(t, uint64(1), b.Stats().Goodbyes)
			assert.Empty(t, a.Instance(), "nothing published after a goodbye")
		})
	}
}

// Close sends goodbyes for what the Conn published, unless SilentClose:
// then the member stays in other caches until its TTL runs out, and the
// cache expires it without a goodbye.
func TestMDNSCloseGoodbyeAndExpiry(t *testing.T) {
	t.Run("close says goodbye", func(t *testing.T) {
		netlab.Require(t)
		leakCheck(t)
		port := freePort(t)
		a := open(t, Config{Port: port, Network: "udp4"})
		b := open(t, Config{Port: port, Network: "udp4"})
		a.send(member("a", 1001))
		a.waitEvent("published")
		b.waitMsg("a's announcement", announceOf("a"))
		require.NoError(t, a.Close())
		b.waitMsg("a's goodbye", goodbyeOf("a"))
	})
	t.Run("silent close expires", func(t *testing.T) {
		netlab.Require(t)
		leakCheck(t)
		port := freePort(t)
		a := open(t, Config{Port: port, Network: "udp4", SilentClose: true, TTL: 2 * time.Second})
		b := open(t, Config{Port: port, Network: "udp4"})
		a.send(member("a", 1001))
		a.waitEvent("published")
		b.waitMsg("a's announcement", announceOf("a"))
		require.NoError(t, a.Close())
		name := b.waitEvent("expired")
		assert.True(t, strings.HasPrefix(name, "a."), name)
		assert.Zero(t, b.Stats().Goodbyes, "no goodbye was sent")
	})
}

// A Conn that finds its instance name taken renames itself "NAME (2)";
// the owner keeps its name, and a third Conn sees both members.
func TestMDNSConflictRenames(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t)
	a := open(t, Config{Port: port, Network: "udp4", Instance: "svc"})
	c := open(t, Config{Port: port, Network: "udp4"})
	a.send(member("a", 1001))
	require.Equal(t, `svc._pir._udp.local.`, a.waitEvent("published"))

	b := open(t, Config{Port: port, Network: "udp4", Instance: "svc"})
	b.send(member("b", 1002))
	assert.Equal(t, `svc\ \(2\)._pir._udp.local.`, b.waitEvent("renamed"))
	assert.Equal(t, `svc\ \(2\)._pir._udp.local.`, b.waitEvent("published"))
	assert.Positive(t, b.Stats().Conflicts)
	assert.Equal(t, `svc._pir._udp.local.`, a.Instance())

	c.waitMsg("a", announceOf("a"))
	c.waitMsg("b", announceOf("b"))
}

// Two Conns probing for one name at the same time settle it by the
// tiebreak of RFC 6762 §8.2: they end up with two names.
func TestMDNSSimultaneousProbes(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t)
	a := open(t, Config{Port: port, Network: "udp4", Instance: "twin", HostName: "twin-a"})
	b := open(t, Config{Port: port, Network: "udp4", Instance: "twin", HostName: "twin-b"})
	a.send(member("a", 1001))
	b.send(member("b", 1002))
	na, nb := a.waitEvent("published"), b.waitEvent("published")
	assert.NotEqual(t, na, nb)
	assert.ElementsMatch(t, []string{`twin._pir._udp.local.`, `twin\ \(2\)._pir._udp.local.`}, []string{na, nb})
}

// A member and the group's subtype show under the service type, so that
// standard browsers list pir groups: _pir._udp holds every member, and
// _GROUP._sub._pir._udp the group's.
func TestMDNSBrowseNames(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	c := open(t, Config{Port: freePort(t), Network: "udp4", Group: "Web Farm"})
	assert.Equal(t, "_web-farm-"+shortHash("Web Farm")+"._sub._pir._udp.local.", c.Browse())
	d := open(t, Config{Port: freePort(t), Network: "udp4", Service: "_http._tcp"})
	assert.Equal(t, "_http._tcp.local.", d.Browse())
}

func TestMDNSConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Group"},
		{Config{Group: "g|h"}, "Group"},
		{Config{Group: "g", Service: "_http"}, "Service"},
		{Config{Group: "g", Service: "_http._sctp"}, "Service"},
		{Config{Group: "g", Service: "_a-very-long-name._tcp"}, "Service"},
		{Config{Group: "g", Service: "_a--b._tcp"}, "Service"},
		{Config{Group: "g", Instance: strings.Repeat("x", 64)}, "Instance"},
		{Config{Group: "g", HostName: "Bad_Host"}, "HostName"},
		{Config{Group: "g", Network: "tcp"}, "Network"},
		{Config{Group: "g", TTL: 1}, "TTL"},
		{Config{Group: "g", MaxMessage: 100}, "MaxMessage"},
		{Config{Group: "g", MaxMessage: 9000}, "MaxMessage"},
	} {
		err := tc.cfg.Validate()
		require.ErrorIs(t, err, ErrInvalidConfig, "%+v", tc.cfg)
		assert.Contains(t, err.Error(), tc.want)
	}
	require.NoError(t, Config{Group: "g", Service: "_http._tcp.local."}.Validate())
	d := DefaultConfig("g")
	assert.Equal(t, DefaultService, d.Service)
	assert.Equal(t, uint16(Port), d.Port)
	assert.Equal(t, DefaultTTL, d.TTL)
	assert.Equal(t, DefaultMaxMessage, d.MaxMessage)
}
