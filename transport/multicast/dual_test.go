package multicast

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport"
)

func openDual(t *testing.T, cfg4, cfg6 Config) *Dual {
	t.Helper()
	d, err := NewDual(cfg4, cfg6)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func TestDual(t *testing.T) {
	netlab.RequireIPv6(t)
	leakCheck(t)
	cfg4 := Config{Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp4")), RescanInterval: -1}
	cfg6 := Config{Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp6")), RescanInterval: -1}
	a, b := openDual(t, cfg4, cfg6), openDual(t, cfg4, cfg6)
	rb := pump(t, b)
	ra := pump(t, a)

	lo := loIndex(t)
	links := a.Links()
	require.Equal(t, []transport.Link{
		{Index: lo, Name: "lo", Addr: netlab.LoopbackV4},
		{Index: lo, Name: "lo", Addr: netlab.LoopbackV6},
	}, links)

	// Send goes out on both families.
	require.NoError(t, a.Send([]byte("both")))
	srcs := map[bool]netip.AddrPort{}
	for range 2 {
		p := expect(t, rb, "both")
		srcs[p.Src.Addr().Is4()] = p.Src
		assert.Equal(t, lo, p.IfIndex)
	}
	require.Len(t, srcs, 2, "one copy per family")
	assert.Equal(t, netlab.LoopbackV4, srcs[true].Addr())
	assert.Equal(t, netlab.LoopbackV6, srcs[false].Addr())

	// SendVia picks the family of the link's address.
	for _, l := range links {
		require.NoError(t, a.SendVia([]byte("via "+l.Addr.String()), l))
		p := expect(t, rb, "via "+l.Addr.String())
		assert.Equal(t, l.Addr, p.Src.Addr())
	}
	assert.ErrorIs(t, a.SendVia([]byte("x"), transport.Link{Index: lo, Name: "lo"}), ErrNoInterface,
		"a link without an address has no family")

	// SendTo answers each family's source.
	require.NoError(t, b.SendTo([]byte("to v4"), srcs[true]))
	require.NoError(t, b.SendTo([]byte("to v6"), srcs[false]))
	// a also receives its own multicasts; skip them.
	own := func(d string) bool { return d == "both" || strings.HasPrefix(d, "via ") }
	got := expectSetSkipping(t, ra, own, "to v4", "to v6")
	assert.True(t, got["to v4"].Src.Addr().Is4())
	assert.True(t, got["to v6"].Src.Addr().Is6())

	require.NoError(t, a.Rescan())
	assert.Equal(t, Stats{}, a.Stats())
	require.NoError(t, a.Close())
	require.NoError(t, a.Close())
	assert.ErrorIs(t, a.Send([]byte("x")), transport.ErrClosed)
	_, err := a.Receive(make([]byte, 10))
	assert.ErrorIs(t, err, transport.ErrClosed)
}

func TestNewDualNetworks(t *testing.T) {
	_, err := NewDual(Config{Network: "udp6"}, Config{})
	assert.ErrorContains(t, err, "dual stack needs udp4 and udp6")
	_, err = NewDual(Config{}, Config{Network: "udp4"})
	assert.ErrorContains(t, err, "dual stack needs udp4 and udp6")
	_, err = NewDual(Config{HopLimit: 300}, Config{})
	assert.ErrorContains(t, err, "HopLimit 300")
}
