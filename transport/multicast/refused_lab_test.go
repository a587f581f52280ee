//go:build linux

package multicast

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/nslan"
	"github.com/pirlan/pir/transport"
)

// newLab makes a lab of n hosts for t, closed at its end, or skips t where
// none can be made.
func newLab(t *testing.T, n int) *nslan.Lab {
	t.Helper()
	if ok, reason := nslan.Available(); !ok {
		t.Skip("no network lab here: " + reason)
	}
	l, err := nslan.New(nslan.Config{Hosts: n, Logf: t.Logf})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, l.Close()) })
	return l
}

// Across the lab's bridge, as pirbench runs members: a member on h0 that
// sends to the unicast port of a member on h1 that was closed gets the
// refusal of h1's kernel. Measured figures (delay, share of a burst
// refused) are logged.
func TestRefusedAcrossLab(t *testing.T) {
	l := newLab(t, 2)
	h0, h1 := l.Host(0), l.Host(1)

	for _, fam := range []struct {
		name, network string
		addr          func(*nslan.Host) netip.Addr
	}{
		{"IPv4", "udp4", func(h *nslan.Host) netip.Addr { return h.IPv4 }},
		{"IPv6", "udp6", func(h *nslan.Host) netip.Addr { return h.IPv6 }},
	} {
		t.Run(fam.name, func(t *testing.T) {
			leakCheck(t)
			a, b := labConn(t, h0, fam.network), labConn(t, h1, fam.network)
			require.True(t, a.ReportsRefusals())
			chA, chB := pump(t, a), pump(t, b)
			bAddr := netip.AddrPortFrom(fam.addr(h1), b.LocalAddr().Port())

			// Alive: answered.
			require.NoError(t, a.SendTo([]byte("ping"), bAddr))
			p := expect(t, chB, "ping")
			require.NoError(t, b.SendTo([]byte("pong"), p.Src))
			expect(t, chA, "pong")

			// Killed: refused, about a round trip later.
			require.NoError(t, b.Close())
			start := time.Now()
			require.NoError(t, a.SendTo([]byte("anyone?"), bAddr))
			r := awaitPacket(t, chA, "the refusal")
			took := time.Since(start)
			require.NoError(t, r.err)
			assert.Equal(t, transport.Packet{Refused: true, Src: bAddr}, r.p)
			t.Logf("%s: refused %v after the send", fam.name, took)

			// A burst: h1 limits the ICMP errors it sends to h0
			// (net.ipv4.icmp_ratelimit, net.ipv6.icmp.ratelimit), so only
			// part of it is refused. A datagram from h1 sent after the
			// burst marks its end.
			const burst = 20
			for i := range burst {
				require.NoError(t, a.SendTo([]byte("anyone?"), bAddr), "send %d", i)
			}
			var mark *net.UDPConn
			var err error
			require.NoError(t, h1.Do(func() {
				mark, err = net.ListenUDP(fam.network, nil)
			}))
			require.NoError(t, err)
			defer mark.Close()
			// Wait until h1 has the burst: the last datagram's refusal, or
			// failing that the marker, ends it.
			_, err = mark.WriteToUDPAddrPort([]byte("mark"), netip.AddrPortFrom(fam.addr(h0), a.LocalAddr().Port()))
			require.NoError(t, err)
			refused := 0
			for {
				r := awaitPacket(t, chA, "the marker after the burst")
				require.NoError(t, r.err)
				if !r.p.Refused {
					require.Equal(t, "mark", string(r.data))
					break
				}
				refused++
			}
			t.Logf("%s: %d of a burst of %d refused before the marker sent after it", fam.name, refused, burst)
			assert.Zero(t, a.Stats().ErrorsDropped)
		})
	}
}

// labConn opens a Conn of network on h's eth0, in h's namespace: its
// sockets stay there. It closes when the test ends.
func labConn(t *testing.T, h *nslan.Host, network string) *Conn {
	t.Helper()
	var (
		c   *Conn
		err error
	)
	cfg := Config{Network: network, Interfaces: []string{"eth0"}, RescanInterval: -1, Logger: testLogger(t)}
	require.NoError(t, h.Do(func() { c, err = New(cfg) }))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}
