package stress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport/multicast"
)

// lanMember starts a member with default settings but for what mutate
// changes, on lo, in group port p, with a TCP health server on lo's
// address. Both are closed when the test ends.
func lanMember(t *testing.T, id string, p uint16, mutate ...func(*discovery.Config)) (*discovery.Group, *healthcheck.TCPServer) {
	t.Helper()
	hs := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	require.NoError(t, hs.Start(netip.AddrPortFrom(netlab.LoopbackV4, 0).String()))
	tr, err := multicast.New(multicast.Config{Interfaces: []string{netlab.Loopback},
		Group: netip.AddrPortFrom(multicast.DefaultGroupV4, p), RescanInterval: -1})
	require.NoError(t, err)
	cfg := discovery.Config{Name: "web", Self: discovery.Peer{ID: id, HealthURI: hs.URI()}, Transport: tr}
	for _, f := range mutate {
		f(&cfg)
	}
	g, err := discovery.Join(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		g.Close()
		hs.Close()
	})
	return g, hs
}

// lanGroup starts n members and waits until each lists all the others.
func lanGroup(t *testing.T, n int, p uint16, mutate ...func(*discovery.Config)) []*discovery.Group {
	t.Helper()
	var gs []*discovery.Group
	for i := range n {
		g, _ := lanMember(t, fmt.Sprintf("m%d", i+1), p, mutate...)
		gs = append(gs, g)
	}
	require.Eventually(t, func() bool {
		for _, g := range gs {
			if len(g.Members()) != n-1 {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "the group forms")
	return gs
}

// udpFrom opens a UDP socket bound to addr (port 0 for any), closed when
// the test ends.
func udpFrom(t *testing.T, addr netip.Addr, p uint16) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, p)))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func groupAddr(p uint16) *net.UDPAddr {
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(multicast.DefaultGroupV4, p))
}

// dropped is the sum of a Group's drop counters.
func dropped(g *discovery.Group) uint64 {
	var n uint64
	for _, v := range g.Stats().Dropped {
		n += v
	}
	return n
}

// TestForgedSSRF plays attack 4: forged announcements whose health URIs
// point at a service on each member's own loopback (an HTTP URI with the
// attacker's credentials, a TCP one) or at a DNS name. With the default
// settings no probe reaches the service (0 connections), no forged peer is
// tracked, and each announcement is counted as not_allowed by every member.
func TestForgedSSRF(t *testing.T) {
	setupSources(t)
	const p = 9511
	// The loopback service the forger aims at: it counts connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	svc := ln.Addr().(*net.TCPAddr).AddrPort()

	gs := lanGroup(t, 3, p)
	forger := udpFrom(t, netip.AddrFrom4([4]byte{198, 18, 1, 1}), 0)
	forged := []string{
		fmt.Sprintf("web|ssrf-http|http://user:pass@%s/admin/purge?all=1|tcp://198.18.1.1:1", svc),
		fmt.Sprintf("web|ssrf-tcp|tcp://%s|tcp://198.18.1.1:1", svc),
		fmt.Sprintf("web|ssrf-dns|tcp://victim.example:%d|tcp://198.18.1.1:1", svc.Port()),
	}
	base := make([]uint64, len(gs))
	for i, g := range gs {
		base[i] = dropped(g)
	}
	for _, d := range forged {
		_, err := forger.WriteToUDP([]byte(d), groupAddr(p))
		require.NoError(t, err)
	}
	// Each member has either refused all three, or let one through to a
	// probe (the old behaviour: a connection to the service).
	require.Eventually(t, func() bool {
		if conns.Load() > 0 {
			return true
		}
		for i, g := range gs {
			if dropped(g)-base[i] < uint64(len(forged)) && g.Stats().Pending == 0 {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond)
	for _, g := range gs {
		s := g.Stats()
		t.Logf("figures: %s: not_allowed %d, members %d, pending %d", g.Self().ID, s.Dropped[discovery.DropNotAllowed], s.Members, s.Pending)
		assert.Equal(t, uint64(len(forged)), s.Dropped[discovery.DropNotAllowed], "every forged URI counted as not allowed")
		assert.Zero(t, s.Pending, "no forged peer tracked")
		assert.Len(t, g.Members(), len(gs)-1, "no forged member")
	}
	assert.Zero(t, conns.Load(), "connections to the loopback service")
}
