package multicast

import (
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport"
)

// addVeth makes a veth pair, pirv0 and pirv1, inside the namespace, runs
// the ip commands beforeUp, sets both ends up, and returns pirv0's index.
// The cleanup deletes the pair if the test has not.
func addVeth(t *testing.T, beforeUp ...[]string) int {
	t.Helper()
	netlab.Require(t)
	if out, err := netlab.IP("link", "add", "pirv0", "type", "veth", "peer", "name", "pirv1"); err != nil {
		t.Skipf("cannot make a veth pair in the namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = netlab.IP("link", "del", "pirv0") })
	for _, args := range beforeUp {
		netlab.MustIP(t, args...)
	}
	netlab.MustIP(t, "link", "set", "pirv0", "up")
	netlab.MustIP(t, "link", "set", "pirv1", "up")
	// The carrier comes up a moment later (the kernel's link watch runs
	// at most once a second per device): until then sends fail with
	// "network is unreachable".
	require.Eventually(t, func() bool {
		out, err := netlab.IP("-br", "link", "show", "dev", "pirv0")
		return err == nil && strings.Contains(out, "LOWER_UP")
	}, 5*time.Second, 10*time.Millisecond, "pirv0 has no carrier")
	// The kernel makes an IPv6 address usable in a work queue after the ip
	// command has returned, even with nodad: until then the address has
	// no local route, and a datagram sent to it goes out pirv0 to a
	// neighbour that never answers, and is lost. Wait for the local route
	// of every IPv6 address pirv0 has.
	require.Eventually(t, func() bool {
		addrs, err := netlab.IP("-6", "-o", "addr", "show", "dev", "pirv0")
		if err != nil {
			return false
		}
		routes, err := netlab.IP("-6", "route", "show", "table", "local", "dev", "pirv0")
		if err != nil {
			return false
		}
		for _, line := range strings.Split(addrs, "\n") {
			f := strings.Fields(line)
			i := slices.Index(f, "inet6")
			if i < 0 || i+1 >= len(f) {
				continue
			}
			a, _, _ := strings.Cut(f[i+1], "/")
			if !strings.Contains(routes, "local "+a+" ") {
				return false
			}
		}
		return true
	}, 5*time.Second, 10*time.Millisecond, "pirv0's IPv6 addresses have no local route")
	ifi, err := net.InterfaceByName("pirv0")
	require.NoError(t, err)
	return ifi.Index
}

func linkNames(ls []transport.Link) []string {
	out := []string{}
	for _, l := range ls {
		out = append(out, l.Name)
	}
	return out
}

func linkNamed(t *testing.T, ls []transport.Link, name string) transport.Link {
	t.Helper()
	for _, l := range ls {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no link %s in %v", name, ls)
	return transport.Link{}
}

func TestRescanIPv4(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t, "udp4")
	group := netip.AddrPortFrom(netip.Addr{}, port)
	auto := open(t, Config{Group: group, RescanInterval: -1})
	named := open(t, Config{Group: group, RescanInterval: -1, Interfaces: []string{"lo", "pirv0"}})
	peer := open(t, Config{Group: group, RescanInterval: -1, Interfaces: []string{"lo", "pirv0"}})
	rpeer := pump(t, peer)
	assert.Equal(t, []string{"lo"}, linkNames(auto.Links()))
	assert.Equal(t, []string{"lo"}, linkNames(named.Links()), "pirv0 does not exist yet")

	idx := addVeth(t)
	require.NoError(t, named.Rescan())
	assert.Equal(t, []string{"lo"}, linkNames(named.Links()), "pirv0 has no IPv4 address yet")

	netlab.MustIP(t, "addr", "add", "198.18.0.1/24", "dev", "pirv0")
	require.NoError(t, auto.Rescan())
	require.NoError(t, named.Rescan())
	require.NoError(t, peer.Rescan())
	assert.Equal(t, []string{"pirv0"}, linkNames(auto.Links()), "loopback is dropped once another interface qualifies")
	require.Equal(t, []string{"lo", "pirv0"}, linkNames(named.Links()))
	v0 := linkNamed(t, named.Links(), "pirv0")
	assert.Equal(t, transport.Link{Index: idx, Name: "pirv0", Addr: netip.MustParseAddr("198.18.0.1")}, v0)

	// Sending on the new link: the looped-back copy arrives on pirv0.
	require.NoError(t, named.SendVia([]byte("via pirv0"), v0))
	p := expect(t, rpeer, "via pirv0")
	assert.Equal(t, idx, p.IfIndex)
	assert.Equal(t, netip.MustParseAddr("198.18.0.1"), p.Src.Addr())
	require.NoError(t, named.Send([]byte("on both")))
	got := map[int]bool{}
	for range 2 {
		got[expect(t, rpeer, "on both").IfIndex] = true
	}
	assert.Equal(t, map[int]bool{loIndex(t): true, idx: true}, got, "one copy per link")

	// The address changes.
	netlab.MustIP(t, "addr", "add", "198.19.0.2/24", "dev", "pirv0") // another subnet: deleting a primary deletes its secondaries
	netlab.MustIP(t, "addr", "del", "198.18.0.1/24", "dev", "pirv0")
	require.NoError(t, named.Rescan())
	assert.Equal(t, netip.MustParseAddr("198.19.0.2"), linkNamed(t, named.Links(), "pirv0").Addr)

	// Down, before any rescan notices: a send fails there, not on lo.
	netlab.MustIP(t, "link", "set", "pirv0", "down")
	before := named.Stats().SendFailures
	require.NoError(t, named.Send([]byte("one link down")))
	p = expect(t, rpeer, "one link down")
	assert.Equal(t, loIndex(t), p.IfIndex)
	assert.Equal(t, before+1, named.Stats().SendFailures)
	assert.Error(t, named.SendVia([]byte("x"), v0))

	require.NoError(t, named.Rescan())
	assert.Equal(t, []string{"lo"}, linkNames(named.Links()), "a down interface is dropped")
	netlab.MustIP(t, "link", "set", "pirv0", "up")
	require.NoError(t, named.Rescan())
	assert.Equal(t, []string{"lo", "pirv0"}, linkNames(named.Links()), "and used again once up")

	// Gone.
	netlab.MustIP(t, "link", "del", "pirv0")
	require.NoError(t, auto.Rescan())
	require.NoError(t, named.Rescan())
	assert.Equal(t, []string{"lo"}, linkNames(auto.Links()), "back to loopback")
	assert.Equal(t, []string{"lo"}, linkNames(named.Links()))
	require.NoError(t, auto.Send([]byte("after the veth went")))
	expect(t, rpeer, "after the veth went")
	require.NoError(t, named.Send([]byte("named, after")))
	expect(t, rpeer, "named, after")
}

func TestRescanIPv6(t *testing.T) {
	netlab.RequireIPv6(t)
	leakCheck(t)
	group := netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp6"))
	c := open(t, Config{Network: "udp6", Group: group, RescanInterval: -1, Interfaces: []string{"lo", "pirv0"}})
	assert.Equal(t, []string{"lo"}, linkNames(c.Links()))

	idx := addVeth(t)
	require.NoError(t, c.Rescan())
	require.Equal(t, []string{"lo", "pirv0"}, linkNames(c.Links()))
	l := linkNamed(t, c.Links(), "pirv0")
	assert.Equal(t, idx, l.Index)
	assert.True(t, l.Addr.IsLinkLocalUnicast(), "%v", l.Addr)
	assert.Equal(t, "pirv0", l.Addr.Zone(), "a link-local address carries its zone")

	netlab.MustIP(t, "addr", "add", "fd42::1/64", "dev", "pirv0", "nodad")
	require.NoError(t, c.Rescan())
	assert.Equal(t, netip.MustParseAddr("fd42::1"), linkNamed(t, c.Links(), "pirv0").Addr, "unique-local preferred")

	netlab.MustIP(t, "link", "del", "pirv0")
	require.NoError(t, c.Rescan())
	assert.Equal(t, []string{"lo"}, linkNames(c.Links()))
}

// TestRescanPeriodic: without a Rescan call, the Conn's own goroutine
// notices a new interface (on Linux through the kernel's change notices,
// elsewhere by polling every 10 ms; internal/mcast tests the polling).
func TestRescanPeriodic(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	rescanned := make(chan struct{}, 1)
	testHookRescanned = func() {
		select {
		case rescanned <- struct{}{}:
		default:
		}
	}
	t.Cleanup(func() { testHookRescanned = nil })
	c := open(t, Config{
		Group:          netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp4")),
		RescanInterval: 10 * time.Millisecond,
		Interfaces:     []string{"lo", "pirv0"},
	})
	addVeth(t)
	netlab.MustIP(t, "addr", "add", "198.18.0.1/24", "dev", "pirv0")

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for len(c.Links()) < 2 {
		select {
		case <-rescanned:
		case <-timer.C:
			t.Fatalf("links still %v after %v", c.Links(), timeout)
		}
	}
	assert.Equal(t, []string{"lo", "pirv0"}, linkNames(c.Links()))
}

// TestRescanOnNotice: on Linux the Conn rescans when the kernel reports a
// link or address change, though its RescanInterval is an hour: a new
// interface with an address is joined and used without a Rescan call,
// dropped when it goes down, used again when it comes up, and dropped when
// deleted; Close then returns at once and leaves no goroutine.
func TestRescanOnNotice(t *testing.T) {
	netlab.Require(t)
	if runtime.GOOS != "linux" {
		t.Skip("the Conn watches interface changes on Linux only")
	}
	leakCheck(t)
	cfg := Config{
		Group:          netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp4")),
		RescanInterval: time.Hour,
		Interfaces:     []string{"lo", "pirv0"},
	}
	c := open(t, cfg)
	peer := open(t, cfg)
	rpeer := pump(t, peer)
	require.Equal(t, []string{"lo"}, linkNames(c.Links()))

	links := func(want ...string) {
		t.Helper()
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			assert.Equal(ct, want, linkNames(c.Links()))
			assert.Equal(ct, want, linkNames(peer.Links()), "the peer's")
		}, timeout, 5*time.Millisecond)
	}
	idx := addVeth(t)
	netlab.MustIP(t, "addr", "add", "198.18.0.1/24", "dev", "pirv0")
	links("lo", "pirv0")
	v0 := linkNamed(t, c.Links(), "pirv0")
	assert.Equal(t, transport.Link{Index: idx, Name: "pirv0", Addr: netip.MustParseAddr("198.18.0.1")}, v0)
	require.NoError(t, c.SendVia([]byte("via pirv0"), v0))
	assert.Equal(t, idx, expect(t, rpeer, "via pirv0").IfIndex)

	netlab.MustIP(t, "link", "set", "pirv0", "down")
	links("lo")
	netlab.MustIP(t, "link", "set", "pirv0", "up")
	links("lo", "pirv0")
	netlab.MustIP(t, "link", "del", "pirv0")
	links("lo")

	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(timeout):
		t.Fatalf("Close still blocks after %v", timeout)
	}
}

// TestSendFailsOnEveryLink: when the only link is down, Send reports it.
func TestSendFailsOnEveryLink(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	addVeth(t)
	netlab.MustIP(t, "addr", "add", "198.18.0.1/24", "dev", "pirv0")
	c := open(t, Config{
		Group:          netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp4")),
		RescanInterval: -1,
		Interfaces:     []string{"pirv0"},
	})
	require.Equal(t, []string{"pirv0"}, linkNames(c.Links()))
	require.NoError(t, c.Send([]byte("up")))

	netlab.MustIP(t, "link", "set", "pirv0", "down")
	err := c.Send([]byte("down"))
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrNoInterface)
	assert.ErrorContains(t, err, "failed on every interface")

	require.NoError(t, c.Rescan())
	assert.ErrorIs(t, c.Send([]byte("none")), ErrNoInterface)
}

// TestLinkLocalSource: a datagram from an IPv6 link-local address carries
// the zone, and a reply to it goes back out the right link.
func TestLinkLocalSource(t *testing.T) {
	netlab.RequireIPv6(t)
	leakCheck(t)
	// A fixed link-local address without duplicate address detection, so
	// that it is usable at once.
	idx := addVeth(t,
		[]string{"link", "set", "pirv0", "addrgenmode", "none"},
		[]string{"addr", "add", "fe80::1/64", "dev", "pirv0", "nodad"},
	)
	cfg := Config{
		Network:        "udp6",
		Group:          netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp6")),
		RescanInterval: -1,
		Interfaces:     []string{"pirv0"},
	}
	a, b := open(t, cfg), open(t, cfg)
	ra, rb := pump(t, a), pump(t, b)
	ll := netip.MustParseAddr("fe80::1%pirv0")
	assert.Equal(t, []transport.Link{{Index: idx, Name: "pirv0", Addr: ll}}, a.Links())

	require.NoError(t, a.Send([]byte("from fe80::1")))
	p := expect(t, rb, "from fe80::1")
	assert.Equal(t, netip.AddrPortFrom(ll, a.LocalAddr().Port()), p.Src)
	assert.Equal(t, idx, p.IfIndex)
	expect(t, ra, "from fe80::1")

	require.NoError(t, b.SendTo([]byte("reply"), p.Src))
	expect(t, ra, "reply")
}

// TestSendToRecreatedInterface: an interface deleted and made again under
// the same name has a new index; a reply to a link-local source zoned with
// that name must use the new one (Go's net package caches names for a
// minute).
func TestSendToRecreatedInterface(t *testing.T) {
	netlab.RequireIPv6(t)
	leakCheck(t)
	veth := func() int {
		return addVeth(t,
			[]string{"link", "set", "pirv0", "addrgenmode", "none"},
			[]string{"addr", "add", "fe80::1/64", "dev", "pirv0", "nodad"},
		)
	}
	cfg := Config{
		Network:        "udp6",
		Group:          netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp6")),
		RescanInterval: -1,
		Interfaces:     []string{"pirv0"},
	}
	first := veth()
	a, b := open(t, cfg), open(t, cfg)
	ra, rb := pump(t, a), pump(t, b)
	exchange := func(round string) {
		t.Helper()
		require.NoError(t, a.Send([]byte("hello "+round)))
		p := expect(t, rb, "hello "+round)
		expect(t, ra, "hello "+round)
		require.Equal(t, "pirv0", p.Src.Addr().Zone())
		require.NoError(t, b.SendTo([]byte("reply "+round), p.Src))
		expect(t, ra, "reply "+round)
	}
	exchange("first") // Go's net package now maps pirv0 to the first index

	netlab.MustIP(t, "link", "del", "pirv0")
	second := veth()
	require.NotEqual(t, first, second)
	require.NoError(t, a.Rescan())
	require.NoError(t, b.Rescan())
	require.Equal(t, second, linkNamed(t, a.Links(), "pirv0").Index)
	exchange("second")
}
