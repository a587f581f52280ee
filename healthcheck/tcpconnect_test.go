package healthcheck_test

import (
	"context"
	"net"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/healthcheck"
)

// A tcpconnect target is healthy when something accepts the connection,
// whatever it says; a closed port is not. NewRegistry serves neither
// tcpconnect nor mdns.
func TestTCPConnectProber(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := healthcheck.NewTCPConnectProber(healthcheck.TCPConfig{})
	u := &url.URL{Scheme: "tcpconnect", Host: ln.Addr().String()}
	require.NoError(t, p.Probe(context.Background(), u))
	ln.Close()
	assert.Error(t, p.Probe(context.Background(), u), "the port is closed")
	assert.ErrorIs(t, p.Probe(context.Background(), &url.URL{Scheme: "tcpconnect", Host: "127.0.0.1"}), healthcheck.ErrInvalidTarget)

	// Neither scheme is a default: they prove nothing about who announced.
	r := healthcheck.NewRegistry()
	assert.False(t, r.Supports("tcpconnect"))
	assert.False(t, r.Supports("mdns"))
	assert.ErrorIs(t, r.Probe(context.Background(), &url.URL{Scheme: "mdns", Host: "192.0.2.1:9"}), healthcheck.ErrUnsupportedScheme)
}
