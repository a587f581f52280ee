package mdns

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/transporttest"
)

// TestMDNSConformance runs the transport suite against each family and
// both together, on lo inside the private namespace: the suite's datagrams
// are not pir messages, so they travel opaquely.
func TestMDNSConformance(t *testing.T) {
	for _, network := range []string{"udp4", "udp6", ""} {
		t.Run("network="+network, func(t *testing.T) {
			netlab.Require(t)
			if network != "udp4" {
				netlab.RequireIPv6(t)
			}
			leakCheck(t)
			transporttest.Run(t, func(t *testing.T, n int) []transport.Transport {
				cfg := Config{Group: "conformance", Port: freePort(t), Network: network, Interfaces: []string{netlab.Loopback}, Opaque: true}
				out := make([]transport.Transport, n)
				for i := range out {
					c, err := New(cfg)
					require.NoError(t, err)
					t.Cleanup(func() { _ = c.Close() }) // in case a later one fails
					out[i] = c
				}
				return out
			})
		})
	}
}
