package mcast

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests check pure logic: no socket, no namespace.

func TestLinkAddr(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name  string
		addrs []netip.Addr
		v6    bool
		want  netip.Addr
	}{
		{"v4 global over link-local and loopback", []netip.Addr{a("127.0.0.1"), a("169.254.1.1"), a("192.168.1.5"), a("10.0.0.1")}, false, a("192.168.1.5")},
		{"v4 mapped form", []netip.Addr{a("::ffff:192.168.1.5")}, false, a("192.168.1.5")},
		{"v4 link-local over loopback", []netip.Addr{a("127.0.0.1"), a("169.254.1.1")}, false, a("169.254.1.1")},
		{"v4 loopback last", []netip.Addr{a("127.0.0.1"), a("fe80::1")}, false, a("127.0.0.1")},
		{"v4 broadcast reaches no host", []netip.Addr{a("255.255.255.255"), a("169.254.1.1")}, false, a("169.254.1.1")},
		{"v4 none", []netip.Addr{a("fe80::1"), a("2001:db8::1")}, false, netip.Addr{}},
		{"v6 ULA over link-local", []netip.Addr{a("fe80::1"), a("192.168.1.5"), a("fd42::5")}, true, a("fd42::5")},
		{"v6 global", []netip.Addr{a("fe80::1"), a("2001:db8::7")}, true, a("2001:db8::7")},
		{"v6 link-local gets the zone", []netip.Addr{a("::1"), a("fe80::1")}, true, a("fe80::1%eth0")},
		{"v6 loopback", []netip.Addr{a("::1"), a("127.0.0.1")}, true, a("::1")},
		{"v6 ignores mapped v4", []netip.Addr{a("::ffff:192.168.1.5")}, true, netip.Addr{}},
		{"v6 none", nil, true, netip.Addr{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, LinkAddr(tc.addrs, "eth0", tc.v6))
		})
	}
}

func TestChoose(t *testing.T) {
	a := netip.MustParseAddr
	const up = net.FlagUp | net.FlagMulticast
	it := func(index int, name string, flags net.Flags, addrs ...string) Interface {
		i := Interface{Interface: net.Interface{Index: index, Name: name, Flags: flags}}
		for _, s := range addrs {
			i.Addrs = append(i.Addrs, a(s))
		}
		return i
	}
	lo := it(1, "lo", up|net.FlagLoopback, "127.0.0.1", "::1")
	eth0 := it(2, "eth0", up, "192.168.1.5", "fe80::5")
	eth1Down := it(3, "eth1", net.FlagMulticast, "192.168.2.5")
	tun := it(4, "tun0", net.FlagUp, "10.8.0.2")
	v6only := it(5, "eth2", up, "fe80::9", "2001:db8::9")
	loNoMcast := it(1, "lo", net.FlagUp|net.FlagLoopback, "127.0.0.1", "::1")

	names := func(ls []Interface) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.Name)
		}
		return out
	}
	all := []Interface{lo, eth0, eth1Down, tun, v6only}

	assert.Equal(t, []string{"eth0"}, names(Choose(all, nil, false)),
		"udp4: up, multicast, IPv4-addressed, not loopback")
	assert.Equal(t, []string{"eth0", "eth2"}, names(Choose(all, nil, true)),
		"udp6: up, multicast, IPv6-addressed, not loopback")
	assert.Equal(t, []string{"lo"}, names(Choose([]Interface{lo, eth1Down, tun}, nil, false)),
		"loopback when nothing else qualifies")
	assert.Empty(t, Choose([]Interface{loNoMcast, tun}, nil, false), "loopback without the multicast flag")
	assert.Equal(t, []string{"lo", "eth0"}, names(Choose(all, []string{"lo", "eth0", "eth1", "tun0", "gone"}, false)),
		"named: loopback too, but still only up, multicast and addressed")
	assert.Empty(t, Choose(all, []string{"eth2"}, false), "named, but no IPv4 address")

	l := Choose(all, []string{"eth2"}, true)
	require.Len(t, l, 1)
	assert.Equal(t, a("2001:db8::9"), l[0].Addr(true))
	assert.Equal(t, 5, l[0].Index)
}

// TestAddrsWithoutMask is the difference between the two copies of the
// interface listing that was a bug: transport/mdns skipped the addresses
// net.Interface.Addrs reports as *net.IPAddr (as Windows reports anycast
// addresses), so an interface that had only such addresses was never used.
func TestAddrsWithoutMask(t *testing.T) {
	const up = net.FlagUp | net.FlagMulticast
	ifs := []net.Interface{
		{Index: 7, Name: "anycast0", Flags: up},
		{Index: 8, Name: "eth0", Flags: up},
		{Index: 9, Name: "broken", Flags: up},
	}
	addrs := map[int][]net.Addr{
		7: {&net.IPAddr{IP: net.ParseIP("192.0.2.7")}, &net.IPAddr{IP: net.ParseIP("2001:db8::7")}},
		8: {
			&net.IPNet{IP: net.ParseIP("198.51.100.8").To4(), Mask: net.CIDRMask(24, 32)},
			&net.IPNet{IP: net.ParseIP("fe80::8"), Mask: net.CIDRMask(64, 128)},
			&net.IPNet{IP: net.ParseIP("224.0.0.251"), Mask: net.CIDRMask(32, 32)}, // not unicast: left out
			&net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},          // nor this, which would make every source on-link
		},
	}
	got := withAddrs(ifs, func(ifi *net.Interface) ([]net.Addr, error) {
		if ifi.Index == 9 {
			return nil, errors.New("cannot read")
		}
		return addrs[ifi.Index], nil
	})
	require.Len(t, got, 3)

	any0, eth0, broken := got[0], got[1], got[2]
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8::7")}, any0.Addrs)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::7/128")}, any0.Prefixes,
		"an address without a mask is on-link alone")
	assert.Equal(t, netip.MustParseAddr("192.0.2.7"), any0.Addr(false))
	assert.Equal(t, netip.MustParseAddr("2001:db8::7"), any0.Addr(true))
	assert.True(t, any0.OnLink(netip.MustParseAddr("192.0.2.7")))
	assert.False(t, any0.OnLink(netip.MustParseAddr("192.0.2.8")))
	for _, v6 := range []bool{false, true} {
		ch := Choose(got, []string{"anycast0"}, v6)
		require.Len(t, ch, 1, "v6=%v: an interface with only maskless addresses is used", v6)
		assert.Equal(t, 7, ch[0].Index)
	}

	assert.Equal(t, []netip.Addr{netip.MustParseAddr("198.51.100.8"), netip.MustParseAddr("fe80::8")}, eth0.Addrs)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("fe80::/64")}, eth0.Prefixes)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("198.51.100.8")}, eth0.Family(false))
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("fe80::8")}, eth0.Family(true))
	assert.Equal(t, netip.MustParseAddr("fe80::8%eth0"), eth0.Addr(true))
	assert.True(t, eth0.OnLink(netip.MustParseAddr("198.51.100.200")))
	assert.True(t, eth0.OnLink(netip.MustParseAddr("::ffff:198.51.100.200")), "mapped form")
	assert.True(t, eth0.OnLink(netip.MustParseAddr("169.254.3.3")), "link-local is always on-link")
	assert.False(t, eth0.OnLink(netip.MustParseAddr("203.0.113.1")))

	assert.Equal(t, "broken", broken.Name)
	assert.Empty(t, broken.Addrs, "an interface whose addresses cannot be read is listed without any")
}

func TestZoneIndex(t *testing.T) {
	known := func(name string) (int, bool) {
		if name == "eth0" {
			return 42, true
		}
		return 0, false
	}
	assert.Equal(t, "", ZoneIndex("", known))
	assert.Equal(t, "7", ZoneIndex("7", known), "numeric zones are kept")
	assert.Equal(t, "42", ZoneIndex("eth0", known), "the caller's links come first")
	assert.Equal(t, "no-such-interface-here", ZoneIndex("no-such-interface-here", known))
	// Another name is looked up afresh: loopback exists wherever the
	// tests run, by some name.
	ifs, err := net.Interfaces()
	require.NoError(t, err)
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback != 0 {
			assert.Equal(t, strconv.Itoa(ifi.Index), ZoneIndex(ifi.Name, nil))
			return
		}
	}
}

func TestForGroup(t *testing.T) {
	g := netip.MustParseAddr("239.255.112.105")
	assert.True(t, ForGroup(g, g))
	assert.True(t, ForGroup(netip.Addr{}, g), "destination unknown")
	assert.True(t, ForGroup(netip.MustParseAddr("198.18.255.1"), g), "unicast")
	assert.False(t, ForGroup(netip.MustParseAddr("224.0.0.251"), g), "another group")
	g6 := netip.MustParseAddr("ff02::fb")
	assert.True(t, ForGroup(netip.MustParseAddr("ff02::fb%lo"), g6), "zone ignored")
	assert.False(t, ForGroup(netip.MustParseAddr("ff02::1"), g6))
}
