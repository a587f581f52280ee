package healthcheck_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/pirlan/pir/healthcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// replyTCP answers each connection's first byte with reply after delay,
// then records every byte the prober sent, up to EOF, on sent.
func replyTCP(t *testing.T, host string, reply []byte, delay time.Duration) (u *url.URL, sent <-chan []byte) {
	ch := make(chan []byte, 16)
	u = startRawTCP(t, host, func(c net.Conn, done <-chan struct{}) {
		var first [1]byte
		if _, err := io.ReadFull(c, first[:]); err != nil {
			return
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
		if _, err := c.Write(reply); err != nil {
			return
		}
		rest, _ := io.ReadAll(c)
		select {
		case ch <- append(first[:], rest...):
		default:
		}
	})
	return u, ch
}

func TestTCPProber(t *testing.T) {
	forEachLoopback(t, func(t *testing.T, host string) {
		t.Run("Healthy", func(t *testing.T) {
			u, sent := replyTCP(t, host, []byte{0x00}, 0)
			p := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: shortTimeout})
			require.NoError(t, p.Probe(context.Background(), u))
			// Byte-compatible with the original pir: one 0x00, nothing else.
			assert.Equal(t, []byte{0x00}, wait(t, sent, "the probe bytes"))
		})
		t.Run("Refused", func(t *testing.T) {
			p := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: longTimeout})
			err := p.Probe(context.Background(), refusedURI(t, "tcp", host))
			require.ErrorIs(t, err, syscall.ECONNREFUSED)
			assert.NotErrorIs(t, err, healthcheck.ErrUnhealthy)
		})
		t.Run("Silent", func(t *testing.T) {
			u, _ := silentTCP(t, host)
			p := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: shortTimeout})
			requireTimeout(t, p.Probe(context.Background(), u))
		})
		t.Run("WrongByte", func(t *testing.T) {
			u, _ := replyTCP(t, host, []byte{0x01}, 0)
			p := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: shortTimeout})
			err := p.Probe(context.Background(), u)
			require.ErrorIs(t, err, healthcheck.ErrUnhealthy)
			assert.Contains(t, err.Error(), "01")
		})
		t.Run("ClosedWithoutReply", func(t *testing.T) {
			u := startRawTCP(t, host, func(c net.Conn, _ <-chan struct{}) {
				var b [1]byte
				_, _ = c.Read(b[:])
				_ = c.Close()
			})
			p := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: longTimeout})
			require.ErrorIs(t, p.Probe(context.Background(), u), healthcheck.ErrUnhealthy)
		})
		t.Run("SlowButInTime", func(t *testing.T) {
			u, _ := replyTCP(t, host, []byte{0x00}, 50*time.Millisecond)
			p := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: longTimeout})
			require.NoError(t, p.Probe(context.Background(), u))
		})
		t.Run("SlowerThanTimeout", func(t *testing.T) {
			// The server holds its reply until the probe has given up.
			release := make(chan struct{})
			u := startRawTCP(t, host, func(c net.Conn, done <-chan struct{}) {
				var b [1]byte
				if _, err := c.Read(b[:]); err != nil {
					return
				}
				select {
				case <-release:
					_, _ = c.Write([]byte{0x00})
				case <-done:
				}
			})
			p := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: shortTimeout})
			err := p.Probe(context.Background(), u)
			close(release)
			requireTimeout(t, err)
		})
		t.Run("ContextDeadlineSoonerThanTimeout", func(t *testing.T) {
			u, _ := silentTCP(t, host)
			p := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: longTimeout})
			ctx, cancel := context.WithTimeout(context.Background(), shortTimeout)
			defer cancel()
			start := time.Now()
			err := p.Probe(ctx, u)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Less(t, time.Since(start), longTimeout/2, "the probe waited for its own timeout")
		})
		t.Run("CancelWhileWaiting", func(t *testing.T) {
			u, got := silentTCP(t, host)
			p := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: longTimeout})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- p.Probe(ctx, u) }()
			wait(t, got, "the probe byte")
			cancel()
			err := wait(t, errc, "the probe to return after cancel")
			require.ErrorIs(t, err, context.Canceled)
		})
	})
}

// TestTCPProberZone probes an IPv6 URI with a zone, as a link-local
// address needs: the zone must be decoded from its %25 form and reach the
// dialer. On ::1 the kernel accepts and ignores the zone of the loopback
// interface, so this runs on any machine with IPv6 loopback.
func TestTCPProberZone(t *testing.T) {
	skipWithoutIPv6(t)
	lo := loopbackName(t)
	u, _ := replyTCP(t, "::1", []byte{0x00}, 0)
	zoned, err := url.Parse("tcp://[::1%25" + lo + "]:" + u.Port())
	require.NoError(t, err)
	require.Equal(t, "::1%"+lo, zoned.Hostname())
	p := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: shortTimeout})
	require.NoError(t, p.Probe(context.Background(), zoned))
}

// loopbackName returns the name of the loopback interface.
func loopbackName(t *testing.T) string {
	t.Helper()
	ifs, err := net.Interfaces()
	require.NoError(t, err)
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback != 0 {
			return ifi.Name
		}
	}
	t.Skip("no loopback interface")
	return ""
}

// TestProberInvalidTarget feeds the tcp and udp probers URIs they cannot
// dial: each must fail at once with ErrInvalidTarget.
func TestProberInvalidTarget(t *testing.T) {
	probers := map[string]healthcheck.Prober{
		"tcp": healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: longTimeout}),
		"udp": healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: longTimeout}),
	}
	targets := map[string]*url.URL{
		"nil":        nil,
		"no port":    {Scheme: "tcp", Host: "127.0.0.1"},
		"empty port": {Scheme: "tcp", Host: "127.0.0.1:"},
		"port 0":     {Scheme: "tcp", Host: "127.0.0.1:0"},
		"port 65536": {Scheme: "tcp", Host: "127.0.0.1:65536"},
		"no host":    {Scheme: "tcp", Host: ":7"},
		"opaque":     {Scheme: "tcp", Opaque: "127.0.0.1:7"},
		"v6 no port": {Scheme: "tcp", Host: "[::1]"},
		"bad host":   {Scheme: "tcp", Host: "a b:7"},
		"bad zone":   {Scheme: "tcp", Host: "[fe80::1%]]:7"},
	}
	for pname, p := range probers {
		for tname, u := range targets {
			t.Run(pname+"/"+tname, func(t *testing.T) {
				require.ErrorIs(t, p.Probe(context.Background(), u), healthcheck.ErrInvalidTarget)
			})
		}
	}
}
