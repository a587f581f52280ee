package multicast

import (
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
