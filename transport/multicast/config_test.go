package multicast

import (
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/transport"
)

// These tests need no network namespace: they check pure logic.

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	assert.Equal(t, "udp4", c.Network)
	assert.Equal(t, netip.MustParseAddrPort("224.0.0.1:9999"), c.Group)
	assert.Equal(t, 1, c.HopLimit)
	assert.Equal(t, transport.MaxDatagram, c.MaxDatagram)
	assert.Equal(t, DefaultRescanInterval, c.RescanInterval)
	assert.NotNil(t, c.Logger)
	assert.False(t, c.DisableLoopback)
	require.NoError(t, c.Validate())

	c6 := Config{Network: "udp6"}.withDefaults()
	assert.Equal(t, netip.AddrPortFrom(DefaultGroupV6, DefaultPort), c6.Group)
	assert.True(t, DefaultGroupV6.IsLinkLocalMulticast())

	// A group address without a port gets the default port, and the
	// caller's Config is not written to.
	in := Config{Group: netip.AddrPortFrom(netip.MustParseAddr("239.255.112.105"), 0), Interfaces: []string{"eth0"}}
	out := in.withDefaults()
	assert.Equal(t, netip.MustParseAddrPort("239.255.112.105:9999"), out.Group)
	out.Interfaces[0] = "changed"
	assert.Equal(t, "eth0", in.Interfaces[0])
	assert.Equal(t, uint16(0), in.Group.Port())
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none for a valid config
	}{
		{name: "zero", cfg: Config{}},
		{name: "udp6 zero", cfg: Config{Network: "udp6"}},
		{name: "admin scoped", cfg: Config{Group: netip.MustParseAddrPort("239.255.112.105:4000")}},
		{name: "mapped v4 group", cfg: Config{Group: netip.MustParseAddrPort("[::ffff:239.1.2.3]:4000")}},
		{name: "max sizes", cfg: Config{Network: "udp6", MaxDatagram: 65527, HopLimit: 255}},
		{name: "bad network", cfg: Config{Network: "tcp"}, want: []string{`Network "tcp"`}},
		{name: "unicast group", cfg: Config{Group: netip.MustParseAddrPort("10.0.0.1:1")}, want: []string{"not a multicast"}},
		{name: "v6 group on udp4", cfg: Config{Group: netip.MustParseAddrPort("[ff02::1]:1")}, want: []string{"not an IPv4"}},
		{name: "v4 group on udp6", cfg: Config{Network: "udp6", Group: netip.MustParseAddrPort("224.0.0.1:1")}, want: []string{"not an IPv6"}},
		{name: "zone", cfg: Config{Network: "udp6", Group: netip.MustParseAddrPort("[ff02::1%eth0]:1")}, want: []string{"zone"}},
		{name: "everything wrong at once",
			cfg:  Config{HopLimit: 256, MaxDatagram: 65508, Interfaces: []string{""}, Group: netip.MustParseAddrPort("10.0.0.1:1")},
			want: []string{"HopLimit 256", "MaxDatagram 65508", "Interfaces[0] is an empty interface name", "not a multicast"}},
		{name: "negative", cfg: Config{HopLimit: -1, MaxDatagram: -1}, want: []string{"HopLimit -1", "MaxDatagram -1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			for _, w := range tc.want {
				assert.ErrorContains(t, err, w)
			}
			_, err = New(tc.cfg)
			require.Error(t, err, "New must refuse what Validate refuses")
		})
	}
}

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
		{"v4 none", []netip.Addr{a("fe80::1"), a("2001:db8::1")}, false, netip.Addr{}},
		{"v6 ULA over link-local", []netip.Addr{a("fe80::1"), a("192.168.1.5"), a("fd42::5")}, true, a("fd42::5")},
		{"v6 global", []netip.Addr{a("fe80::1"), a("2001:db8::7")}, true, a("2001:db8::7")},
		{"v6 link-local gets the zone", []netip.Addr{a("::1"), a("fe80::1")}, true, a("fe80::1%eth0")},
		{"v6 loopback", []netip.Addr{a("::1"), a("127.0.0.1")}, true, a("::1")},
		{"v6 ignores mapped v4", []netip.Addr{a("::ffff:192.168.1.5")}, true, netip.Addr{}},
		{"v6 none", nil, true, netip.Addr{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, linkAddr(tc.addrs, "eth0", tc.v6))
		})
	}
}

func TestChooseLinks(t *testing.T) {
	a := netip.MustParseAddr
	const up = net.FlagUp | net.FlagMulticast
	lo := iface{net.Interface{Index: 1, Name: "lo", Flags: up | net.FlagLoopback}, []netip.Addr{a("127.0.0.1"), a("::1")}}
	eth0 := iface{net.Interface{Index: 2, Name: "eth0", Flags: up}, []netip.Addr{a("192.168.1.5"), a("fe80::5")}}
	eth1Down := iface{net.Interface{Index: 3, Name: "eth1", Flags: net.FlagMulticast}, []netip.Addr{a("192.168.2.5")}}
	tun := iface{net.Interface{Index: 4, Name: "tun0", Flags: net.FlagUp}, []netip.Addr{a("10.8.0.2")}}
	v6only := iface{net.Interface{Index: 5, Name: "eth2", Flags: up}, []netip.Addr{a("fe80::9"), a("2001:db8::9")}}
	loNoMcast := iface{net.Interface{Index: 1, Name: "lo", Flags: net.FlagUp | net.FlagLoopback}, lo.addrs}

	names := func(ls []link) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.ifi.Name)
		}
		return out
	}
	all := []iface{lo, eth0, eth1Down, tun, v6only}

	assert.Equal(t, []string{"eth0"}, names(chooseLinks(all, nil, false)),
		"udp4: up, multicast, IPv4-addressed, not loopback")
	assert.Equal(t, []string{"eth0", "eth2"}, names(chooseLinks(all, nil, true)),
		"udp6: up, multicast, IPv6-addressed, not loopback")
	assert.Equal(t, []string{"lo"}, names(chooseLinks([]iface{lo, eth1Down, tun}, nil, false)),
		"loopback when nothing else qualifies")
	assert.Empty(t, chooseLinks([]iface{loNoMcast, tun}, nil, false), "loopback without the multicast flag")
	assert.Equal(t, []string{"lo", "eth0"}, names(chooseLinks(all, []string{"lo", "eth0", "eth1", "tun0", "gone"}, false)),
		"named: loopback too, but still only up, multicast and addressed")
	assert.Empty(t, chooseLinks(all, []string{"eth2"}, false), "named, but no IPv4 address")

	l := chooseLinks(all, []string{"eth2"}, true)
	require.Len(t, l, 1)
	assert.Equal(t, a("2001:db8::9"), l[0].addr)
	assert.Equal(t, 5, l[0].ifi.Index)
}
