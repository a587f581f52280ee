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
// whatever it says; a closed port is not. mdns targets are always healthy.
func TestTCPConnectProber(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := healthcheck.NewTCPConnectProber(healthcheck.TCPConfig{})
	u := &url.URL{Scheme: "tcpconnect", Host: ln.Addr().String()}
	require.NoError(t, p.Probe(context.Background(), u))
	ln.Close()
	assert.Error(t, p.Probe(context.Background(), u), "the port is closed")
	assert.ErrorIs(t, p.Probe(context.Background(), &url.URL{Scheme: "tcpconnect", Host: "127.0.0.1"}), healthcheck.ErrInvalidTarget)

	r := healthcheck.NewRegistry()
	assert.True(t, r.Supports("tcpconnect"))
	assert.True(t, r.Supports("mdns"))
	assert.NoError(t, r.Probe(context.Background(), &url.URL{Scheme: "mdns", Host: "192.0.2.1:9"}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, r.Probe(ctx, &url.URL{Scheme: "mdns", Host: "192.0.2.1:9"}), context.Canceled)
}
