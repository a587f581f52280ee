package nslan

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// mcastHelperEnv makes the test binary a multicast sender or receiver for
// the routed lab's hosts. It is checked in init, before TestMain, so that
// the helper needs nothing of lab_test.go's.
const mcastHelperEnv = "PIRLAB_MCAST_HELPER"

func init() {
	if os.Getenv(mcastHelperEnv) != "" {
		os.Exit(mcastHelper(os.Args[1:]))
	}
}

// mcastHelper runs "recv GROUP:PORT" (join GROUP on eth0, print "ready",
// then "got PAYLOAD" for each datagram) or "send GROUP:PORT HOPS COUNT
// TAG" (send COUNT datagrams "TAG-i" on eth0 with that TTL or hop limit,
// 10 ms apart).
func mcastHelper(args []string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "mcast helper:", err)
		return 1
	}
	if len(args) < 2 {
		return fail(fmt.Errorf("bad arguments %q", args))
	}
	group, err := netip.ParseAddrPort(args[1])
	if err != nil {
		return fail(err)
	}
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		return fail(err)
	}
	network := "udp4"
	if group.Addr().Is6() {
		network = "udp6"
	}
	switch {
	case args[0] == "recv" && len(args) == 2:
		c, err := net.ListenMulticastUDP(network, ifi, net.UDPAddrFromAddrPort(group))
		if err != nil {
			return fail(err)
		}
		fmt.Println("ready")
		buf := make([]byte, 1500)
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return fail(err)
			}
			fmt.Printf("got %s\n", buf[:n])
		}
	case args[0] == "send" && len(args) == 5:
		hops, err1 := strconv.Atoi(args[2])
		count, err2 := strconv.Atoi(args[3])
		if err1 != nil || err2 != nil {
			return fail(fmt.Errorf("bad arguments %q", args))
		}
		c, err := net.ListenUDP(network, nil)
		if err != nil {
			return fail(err)
		}
		if group.Addr().Is4() {
			p := ipv4.NewPacketConn(c)
			err = p.SetMulticastInterface(ifi)
			if err == nil {
				err = p.SetMulticastTTL(hops)
			}
		} else {
			p := ipv6.NewPacketConn(c)
			err = p.SetMulticastInterface(ifi)
			if err == nil {
				err = p.SetMulticastHopLimit(hops)
			}
		}
		if err != nil {
			return fail(err)
		}
		for i := range count {
			if _, err := c.WriteToUDPAddrPort(fmt.Appendf(nil, "%s-%d", args[4], i), group); err != nil {
				return fail(err)
			}
			time.Sleep(10 * time.Millisecond) // pacing, not waiting for an outcome
		}
		return 0
	}
	return fail(fmt.Errorf("bad arguments %q", args))
}

func newRouted(t *testing.T, cfg RoutedConfig) *Routed {
	t.Helper()
	requireLab(t)
	cfg.Logf = t.Logf
	r, err := NewRouted(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, r.Close()) })
	return r
}

func TestRoutedAddresses(t *testing.T) {
	r := newRouted(t, RoutedConfig{LANs: []int{2, 3}})
	require.Equal(t, 2, r.LANs())
	require.Len(t, r.Hosts(), 5)
	want := [][]string{{"198.18.0.1", "198.18.0.2"}, {"198.18.1.1", "198.18.1.2", "198.18.1.3"}}
	want6 := [][]string{{"fd42::1", "fd42::2"}, {"fd43::1", "fd43::2", "fd43::3"}}
	for lan := range 2 {
		v4, v6 := r.Net(lan)
		g4, g6 := r.Router(lan)
		assert.True(t, v4.Contains(g4) && v6.Contains(g6))
		for j, h := range r.LAN(lan) {
			assert.Equal(t, lan, r.LANOf(h))
			assert.Equal(t, want[lan][j], h.IPv4.String())
			assert.Equal(t, want6[lan][j], h.IPv6.String())
			addrs := inNS(t, h, "ip", "-o", "addr", "show", "dev", "eth0")
			assert.Contains(t, addrs, " inet "+want[lan][j]+"/24 ")
			assert.Contains(t, addrs, " inet6 "+want6[lan][j]+"/64 ")
			assert.NotContains(t, addrs, "/15", "the one-LAN address is gone")
			assert.Contains(t, inNS(t, h, "ip", "route", "show"), "default via "+g4.String())
			assert.Contains(t, inNS(t, h, "ip", "-6", "route", "show"), "default via "+g6.String())
		}
	}
	assert.Equal(t, r.SwitchNS(), r.RouterNS())
	assert.Equal(t, -1, r.LANOf(&Host{}))

	for _, cfg := range []RoutedConfig{{}, {LANs: []int{0}}, {LANs: []int{MaxLANHosts + 1}}, {LANs: make([]int, MaxLANs+1)}} {
		_, err := NewRouted(cfg)
		assert.Error(t, err, "%+v", cfg)
	}
}

// TestRoutedUnicastCrossesTheRouter: hosts reach each other within their
// LAN and across the router, in both families.
func TestRoutedUnicastCrossesTheRouter(t *testing.T) {
	r := newRouted(t, RoutedConfig{LANs: []int{2, 1}})
	a0, a1, b0 := r.LAN(0)[0], r.LAN(0)[1], r.LAN(1)[0]
	startEcho(t, a1)
	startEcho(t, b0)
	startEcho(t, a0)
	for _, c := range []struct{ from, to *Host }{{a0, a1}, {a0, b0}, {b0, a0}} {
		require.NoError(t, ping(t, c.from, c.to.IPv4, 10*time.Second))
		require.NoError(t, ping(t, c.from, c.to.IPv6, 10*time.Second))
	}
	out := inNS(t, a0, "ip", "route", "get", b0.IPv4.String())
	assert.Contains(t, out, "via 198.18.0.254", "LAN 1 is reached through the router")
}

// TestRoutedMulticastStaysOnItsLAN: an announcement multicast on LAN 0,
// even with a TTL that would let a multicast router forward it, is heard
// on LAN 0 and not on LAN 1, whose receiver does hear its own LAN.
func TestRoutedMulticastStaysOnItsLAN(t *testing.T) {
	r := newRouted(t, RoutedConfig{LANs: []int{2, 2}})
	a0, a1, b0, b1 := r.LAN(0)[0], r.LAN(0)[1], r.LAN(1)[0], r.LAN(1)[1]
	for _, group := range []string{"239.255.112.105:9999", "[ff05::8070:6972]:9999"} {
		t.Run(group, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			recvA := startMcast(t, a1, "recv", group)
			recvB := startMcast(t, b0, "recv", group)
			for _, p := range []*Proc{recvA, recvB} {
				_, _, err := p.WaitLine(ctx, 0, func(l Line) bool { return l.Text == "ready" })
				require.NoError(t, err)
			}

			runMcast(t, a0, "send", group, "16", "20", "lanA")
			_, _, err := recvA.WaitLine(ctx, 0, func(l Line) bool { return l.Text == "got lanA-19" })
			require.NoError(t, err, "the LAN's own receiver hears the announcement")

			// Then LAN 1's own traffic: its receiver works, and heard
			// nothing of LAN 0's before it.
			runMcast(t, b1, "send", group, "16", "5", "lanB")
			_, _, err = recvB.WaitLine(ctx, 0, func(l Line) bool { return l.Text == "got lanB-4" })
			require.NoError(t, err, "LAN 1's receiver hears its own LAN")
			for _, l := range recvB.Lines() {
				assert.False(t, strings.HasPrefix(l.Text, "got lanA"), "LAN 1 heard LAN 0's multicast: %s", l.Text)
			}
			for _, l := range recvA.Lines() {
				assert.False(t, strings.HasPrefix(l.Text, "got lanB"), "LAN 0 heard LAN 1's multicast: %s", l.Text)
			}
			require.NoError(t, recvA.Kill())
			require.NoError(t, recvB.Kill())
		})
	}
}

func mcastCommand(ctx context.Context, t *testing.T, h *Host, args ...string) *Proc {
	t.Helper()
	cmd := h.Command(ctx, testBinary(t), args...)
	cmd.Env = append(os.Environ(), mcastHelperEnv+"=1", "GORACE=atexit_sleep_ms=0")
	p, err := h.StartCommand(cmd)
	require.NoError(t, err)
	return p
}

func startMcast(t *testing.T, h *Host, args ...string) *Proc {
	t.Helper()
	return mcastCommand(context.Background(), t, h, args...)
}

func runMcast(t *testing.T, h *Host, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := mcastCommand(ctx, t, h, args...)
	require.NoError(t, p.Wait(ctx), "%s: %s", strings.Join(args, " "), p.Stderr())
}
