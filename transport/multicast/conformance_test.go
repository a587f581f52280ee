package multicast

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/transporttest"
)

// TestConformance runs the transport suite against each family and the
// dual stack, all on lo inside the private namespace.
func TestConformance(t *testing.T) {
	t.Run("udp4", func(t *testing.T) {
		netlab.Require(t)
		leakCheck(t)
		transporttest.Run(t, func(t *testing.T, n int) []transport.Transport {
			cfg := Config{Network: "udp4", Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp4"))}
			return makeN(t, n, func() (transport.Transport, error) { return New(cfg) })
		})
	})
	t.Run("udp4 admin scoped", func(t *testing.T) {
		netlab.Require(t)
		leakCheck(t)
		transporttest.Run(t, func(t *testing.T, n int) []transport.Transport {
			g := netip.AddrPortFrom(netip.MustParseAddr("239.255.112.105"), freePort(t, "udp4"))
			return makeN(t, n, func() (transport.Transport, error) { return New(Config{Group: g}) })
		})
	})
	t.Run("udp6", func(t *testing.T) {
		netlab.RequireIPv6(t)
		leakCheck(t)
		transporttest.Run(t, func(t *testing.T, n int) []transport.Transport {
			cfg := Config{Network: "udp6", Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp6"))}
			return makeN(t, n, func() (transport.Transport, error) { return New(cfg) })
		})
	})
	t.Run("dual", func(t *testing.T) {
		netlab.RequireIPv6(t)
		leakCheck(t)
		transporttest.Run(t, func(t *testing.T, n int) []transport.Transport {
			cfg4 := Config{Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp4"))}
			cfg6 := Config{Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp6"))}
			return makeN(t, n, func() (transport.Transport, error) { return NewDual(cfg4, cfg6) })
		})
	})
}

func makeN(t *testing.T, n int, mk func() (transport.Transport, error)) []transport.Transport {
	t.Helper()
	out := make([]transport.Transport, n)
	for i := range out {
		tr, err := mk()
		require.NoError(t, err)
		t.Cleanup(func() { _ = tr.Close() }) // in case a later one fails
		out[i] = tr
	}
	return out
}
