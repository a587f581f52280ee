package healthcheck_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/healthcheck"
)

// WithoutRetry makes a probe one attempt, whatever the prober's Retry: the
// first exchange is swallowed and no second one starts.
func TestWithoutRetry(t *testing.T) {
	ctx := healthcheck.WithoutRetry(context.Background())
	tcp := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: 300 * time.Millisecond, Retry: 20 * time.Millisecond})
	assert.ErrorIs(t, tcp.Probe(ctx, lossyTCP(t, 1)), os.ErrDeadlineExceeded, "tcp: one connection only")
	conn := healthcheck.NewTCPConnectProber(healthcheck.TCPConfig{Timeout: 300 * time.Millisecond, Retry: 20 * time.Millisecond})
	require.NoError(t, conn.Probe(ctx, lossyTCP(t, 0)), "tcpconnect: the one attempt still counts")
	udp := healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: 300 * time.Millisecond, Retry: 20 * time.Millisecond})
	assert.ErrorIs(t, udp.Probe(ctx, lossyUDP(t, 1)), os.ErrDeadlineExceeded, "udp: one datagram only")

	// The same probes without the marker hedge and succeed.
	require.NoError(t, tcp.Probe(context.Background(), lossyTCP(t, 1)))
	require.NoError(t, udp.Probe(context.Background(), lossyUDP(t, 1)))
}

// WithAttemptGate is asked before every attempt after the first; an
// attempt it refuses is not made.
func TestWithAttemptGate(t *testing.T) {
	var asked, allowed atomic.Int64
	gate := func(n int64) func() bool {
		asked.Store(0)
		return func() bool {
			if asked.Add(1) <= n {
				allowed.Add(1)
				return true
			}
			return false
		}
	}
	tcp := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: 400 * time.Millisecond, Retry: 20 * time.Millisecond})
	ctx := healthcheck.WithAttemptGate(context.Background(), gate(0))
	assert.ErrorIs(t, tcp.Probe(ctx, lossyTCP(t, 1)), os.ErrDeadlineExceeded, "no token, no second connection")
	assert.Positive(t, asked.Load(), "the gate was asked")

	ctx = healthcheck.WithAttemptGate(context.Background(), gate(1))
	require.NoError(t, tcp.Probe(ctx, lossyTCP(t, 1)), "one token: the second connection answers")

	udp := healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: 300 * time.Millisecond, Retry: 20 * time.Millisecond})
	ctx = healthcheck.WithAttemptGate(context.Background(), gate(0))
	assert.ErrorIs(t, udp.Probe(ctx, lossyUDP(t, 1)), os.ErrDeadlineExceeded, "udp: no token, no second datagram")
	ctx = healthcheck.WithAttemptGate(context.Background(), gate(1))
	require.NoError(t, udp.Probe(ctx, lossyUDP(t, 1)), "udp: one token, one more datagram")
}
