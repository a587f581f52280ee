//go:build linux

package multicast

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport"
)

// refusalFamilies runs f for a Conn of each family and for the dual stack,
// each with the address that reaches the namespace's lo in the family f
// is to send to.
func refusalFamilies(t *testing.T, f func(t *testing.T, open func() transport.Transport, host netip.Addr)) {
	conn := func(t *testing.T, network string) func() transport.Transport {
		return func() transport.Transport {
			return open(t, Config{Network: network, Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, network))})
		}
	}
	t.Run("udp4", func(t *testing.T) {
		netlab.Require(t)
		leakCheck(t)
		f(t, conn(t, "udp4"), netlab.LoopbackV4)
	})
	t.Run("udp6", func(t *testing.T) {
		netlab.RequireIPv6(t)
		leakCheck(t)
		f(t, conn(t, "udp6"), netlab.LoopbackV6)
	})
	for _, host := range []netip.Addr{netlab.LoopbackV4, netlab.LoopbackV6} {
		t.Run("dual to "+host.String(), func(t *testing.T) {
			netlab.RequireIPv6(t)
			leakCheck(t)
			f(t, func() transport.Transport {
				d, err := NewDual(
					Config{Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp4")), Logger: testLogger(t)},
					Config{Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp6")), Logger: testLogger(t)})
				require.NoError(t, err)
				t.Cleanup(func() { _ = d.Close() })
				return d
			}, host)
		})
	}
}

// closedPort returns an address of host where nothing listens: a port just
// bound and released.
func closedPort(t *testing.T, host netip.Addr) netip.AddrPort {
	t.Helper()
	network := "udp4"
	if host.Is6() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(host, 0)))
	require.NoError(t, err)
	port := c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	require.NoError(t, c.Close())
	return netip.AddrPortFrom(host, port)
}

// unicastAddr is the address of tr's unicast socket on host.
func unicastAddr(t *testing.T, tr transport.Transport, host netip.Addr) netip.AddrPort {
	t.Helper()
	switch c := tr.(type) {
	case *Conn:
		return netip.AddrPortFrom(host, c.LocalAddr().Port())
	case *Dual:
		if host.Is4() {
			return netip.AddrPortFrom(host, c.v4.LocalAddr().Port())
		}
		return netip.AddrPortFrom(host, c.v6.LocalAddr().Port())
	}
	t.Fatalf("unknown transport %T", tr)
	return netip.AddrPort{}
}

func stats(tr transport.Transport) Stats {
	return tr.(interface{ Stats() Stats }).Stats()
}

// awaitPacket waits for the next outcome of Receive on ch.
func awaitPacket(t *testing.T, ch <-chan rx, what string) rx {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r
	case <-timer.C:
		t.Fatalf("nothing received within %v while waiting for %s", timeout, what)
		return rx{}
	}
}

// A SendTo to a port where nothing listens comes back as a packet with
// Refused set and the destination as Src, never as a Receive error.
func TestRefused(t *testing.T) {
	refusalFamilies(t, func(t *testing.T, open func() transport.Transport, host netip.Addr) {
		a := open()
		require.True(t, a.(transport.RefusalReporter).ReportsRefusals())
		require.True(t, a.(transport.UniqueUnicast).UnicastIsUnique())
		ch := pump(t, a)
		dst := closedPort(t, host)

		require.NoError(t, a.SendTo([]byte("anyone?"), dst))
		r := awaitPacket(t, ch, "the refusal")
		require.NoError(t, r.err, "a refusal is a packet, not an error")
		assert.Equal(t, transport.Packet{Refused: true, Src: dst}, r.p)
		assert.Equal(t, uint64(1), stats(a).Refused)
		assert.Zero(t, stats(a).ErrorsDropped)

		// The Conn still sends and receives.
		b := open()
		chB := pump(t, b)
		require.NoError(t, a.SendTo([]byte("ping"), unicastAddr(t, b, host)))
		p := expect(t, chB, "ping")
		require.NoError(t, b.SendTo([]byte("pong"), p.Src))
		p = expect(t, ch, "pong")
		assert.False(t, p.Refused)
	})
}

// A SendTo to a member that listens is answered, never refused.
func TestNotRefusedWhenOpen(t *testing.T) {
	refusalFamilies(t, func(t *testing.T, open func() transport.Transport, host netip.Addr) {
		a, b := open(), open()
		ch, chB := pump(t, a), pump(t, b)
		for i := range 3 {
			require.NoError(t, a.SendTo([]byte("ping"), unicastAddr(t, b, host)), "ping %d", i)
			p := expect(t, chB, "ping")
			require.NoError(t, b.SendTo([]byte("pong"), p.Src))
			// The first thing a receives is the answer (expect fails on
			// anything else, a refusal included).
			expect(t, ch, "pong")
		}
		assert.Zero(t, stats(a).Refused)
		assert.Zero(t, stats(a).ErrorsDropped)
	})
}

// A flood of refusals: every send succeeds, a datagram sent after the
// flood arrives, and Close stops the readers (leakCheck).
func TestRefusalFlood(t *testing.T) {
	refusalFamilies(t, func(t *testing.T, open func() transport.Transport, host netip.Addr) {
		a, b := open(), open()
		ch := pump(t, a)
		dst := closedPort(t, host)
		const flood = 1000
		for i := range flood {
			require.NoError(t, a.SendTo([]byte("anyone?"), dst), "send %d", i)
		}
		require.NoError(t, b.SendTo([]byte("after"), unicastAddr(t, a, host)))
		refused := 0
		for {
			r := awaitPacket(t, ch, "the datagram sent after the flood")
			require.NoError(t, r.err)
			if !r.p.Refused {
				require.Equal(t, "after", string(r.data))
				break
			}
			require.Equal(t, dst, r.p.Src)
			refused++
		}
		t.Logf("%d of %d refused before the datagram sent after them was received", refused, flood)
		assert.Positive(t, refused)

		// Close stops the readers even with refusals still queued.
		for i := range flood {
			require.NoError(t, a.SendTo([]byte("anyone?"), dst), "send %d", i)
		}
		require.NoError(t, a.Close())
	})
}
