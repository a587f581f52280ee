package healthcheck_test

import (
	"testing"

	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/healthcheck/healthchecktest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConformance runs the shared prober suite for each built-in prober
// against its server, over IPv4 and IPv6, both directly and through a
// Registry.
//
// The TCP and HTTP servers answer at once when unhealthy, so every check
// ends for a reason other than the prober's timeout: their probers get
// longTimeout, and a healthy probe never has to beat a clock (with 300 ms,
// 32 concurrent HTTP probes under the race detector on a loaded machine
// timed out). An unhealthy UDP server is silent, and the timeout is what
// ends that check: the UDP prober keeps shortTimeout.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		scheme string
		prober healthcheck.Prober
		server func(healthcheck.ServerConfig) healthchecktest.Server
	}{
		{
			"tcp", healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: longTimeout}),
			func(c healthcheck.ServerConfig) healthchecktest.Server { return healthcheck.NewTCPServer(c) },
		},
		{
			"udp", healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: shortTimeout}),
			func(c healthcheck.ServerConfig) healthchecktest.Server { return healthcheck.NewUDPServer(c) },
		},
		{
			"http", healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: longTimeout}),
			func(c healthcheck.ServerConfig) healthchecktest.Server { return healthcheck.NewHTTPServer(c) },
		},
	} {
		reg := healthcheck.NewRegistry()
		reg.Register(tc.scheme, tc.prober)
		for _, p := range []struct {
			name   string
			prober healthcheck.Prober
		}{{"Direct", tc.prober}, {"Registry", reg}} {
			t.Run(tc.scheme+"/"+p.name, func(t *testing.T) {
				forEachLoopback(t, func(t *testing.T, host string) {
					healthchecktest.Run(t, p.prober, func(t *testing.T) healthchecktest.Server {
						// The suite probes concurrently from one address:
						// more than one unknown source may open.
						s := tc.server(healthcheck.ServerConfig{MaxConnsPerSource: -1})
						require.NoError(t, s.(interface{ Start(string) error }).Start(anyPort(host)))
						t.Cleanup(func() { assert.NoError(t, s.Close()) })
						return s
					})
				})
			})
		}
	}
}
