package healthcheck_test

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/pirlan/pir/healthcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// replyUDP answers every datagram with reply after delay, and records each
// datagram it got on got.
func replyUDP(t *testing.T, host string, reply []byte, delay time.Duration) (u *url.URL, got <-chan []byte) {
	ch := make(chan []byte, 16)
	u = startRawUDP(t, host, func(pc *net.UDPConn, b []byte, src netip.AddrPort, done <-chan struct{}) {
		select {
		case ch <- b:
		default:
		}
		if delay > 0 {
			tm := time.NewTimer(delay)
			defer tm.Stop()
			select {
			case <-tm.C:
			case <-done:
				return
			}
		}
		_, _ = pc.WriteToUDPAddrPort(reply, src)
	})
	return u, ch
}

func TestUDPProber(t *testing.T) {
	forEachLoopback(t, func(t *testing.T, host string) {
		t.Run("Healthy", func(t *testing.T) {
			u, got := replyUDP(t, host, []byte{0x00}, 0)
			p := healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: shortTimeout})
			require.NoError(t, p.Probe(context.Background(), u))
			assert.Equal(t, []byte{0x00}, wait(t, got, "the probe datagram"))
		})
		t.Run("Refused", func(t *testing.T) {
			p := healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: longTimeout})
			err := p.Probe(context.Background(), refusedURI(t, "udp", host))
			require.ErrorIs(t, err, syscall.ECONNREFUSED)
		})
		t.Run("Silent", func(t *testing.T) {
			u, _ := silentUDP(t, host)
			p := healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: shortTimeout})
			requireTimeout(t, p.Probe(context.Background(), u))
		})
		t.Run("WrongByte", func(t *testing.T) {
			u, _ := replyUDP(t, host, []byte{0x01}, 0)
			p := healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: longTimeout})
			require.ErrorIs(t, p.Probe(context.Background(), u), healthcheck.ErrUnhealthy)
		})
		t.Run("LongReply", func(t *testing.T) {
			u, _ := replyUDP(t, host, []byte{0x00, 0x00}, 0)
			p := healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: longTimeout})
			require.ErrorIs(t, p.Probe(context.Background(), u), healthcheck.ErrUnhealthy)
		})
		t.Run("EmptyReply", func(t *testing.T) {
			u, _ := replyUDP(t, host, []byte{}, 0)
			p := healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: longTimeout})
			require.ErrorIs(t, p.Probe(context.Background(), u), healthcheck.ErrUnhealthy)
		})
		t.Run("SlowButInTime", func(t *testing.T) {
			u, _ := replyUDP(t, host, []byte{0x00}, 50*time.Millisecond)
			p := healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: longTimeout})
			require.NoError(t, p.Probe(context.Background(), u))
		})
		t.Run("SlowerThanTimeout", func(t *testing.T) {
			release := make(chan struct{})
			u := startRawUDP(t, host, func(pc *net.UDPConn, _ []byte, src netip.AddrPort, done <-chan struct{}) {
				select {
				case <-release:
					_, _ = pc.WriteToUDPAddrPort([]byte{0x00}, src)
				case <-done:
				}
			})
			p := healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: shortTimeout})
			err := p.Probe(context.Background(), u)
			close(release)
			requireTimeout(t, err)
		})
		t.Run("ContextDeadlineSoonerThanTimeout", func(t *testing.T) {
			u, _ := silentUDP(t, host)
			p := healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: longTimeout})
			ctx, cancel := context.WithTimeout(context.Background(), shortTimeout)
			defer cancel()
			start := time.Now()
			err := p.Probe(ctx, u)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Less(t, time.Since(start), longTimeout/2, "the probe waited for its own timeout")
		})
		t.Run("CancelWhileWaiting", func(t *testing.T) {
			u, got := silentUDP(t, host)
			p := healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: longTimeout})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- p.Probe(ctx, u) }()
			wait(t, got, "the probe datagram")
			cancel()
			require.ErrorIs(t, wait(t, errc, "the probe to return after cancel"), context.Canceled)
		})
	})
}
