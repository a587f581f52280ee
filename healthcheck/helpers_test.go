package healthcheck_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pirlan/pir/healthcheck"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Short timeouts keep the suite quick; long ones stand for "never" in tests
// where the probe must end for another reason, so that a prober that waited
// for its timeout instead would fail the test's bound.
const (
	shortTimeout = 300 * time.Millisecond
	longTimeout  = time.Minute
	// bound is how long a test waits for something that should happen at
	// once, before it fails: generous, for a loaded machine.
	bound = 10 * time.Second
)

// forEachLoopback runs f once on 127.0.0.1 and once on ::1, skipping the
// IPv6 run if this machine has no IPv6 loopback.
func forEachLoopback(t *testing.T, f func(t *testing.T, host string)) {
	t.Helper()
	for _, lb := range []struct{ name, host string }{{"IPv4", "127.0.0.1"}, {"IPv6", "::1"}} {
		t.Run(lb.name, func(t *testing.T) {
			if lb.host == "::1" {
				skipWithoutIPv6(t)
			}
			f(t, lb.host)
		})
	}
}

func skipWithoutIPv6(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	_ = ln.Close()
}

// anyPort is host with port 0, for Listen.
func anyPort(host string) string { return net.JoinHostPort(host, "0") }

func uriOf(scheme string, a net.Addr, path string) *url.URL {
	return &url.URL{Scheme: scheme, Host: a.String(), Path: path}
}

// rawTCP is a TCP listener whose connections a test handles itself, each
// in its own goroutine. done closes when the test ends, after which every
// connection is closed and every handler waited for.
type rawTCP struct {
	ln   net.Listener
	done chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	cs   []net.Conn
}

// startRawTCP listens on host and hands each connection to handle. It
// returns the tcp:// URI of the listener.
func startRawTCP(t *testing.T, host string, handle func(c net.Conn, done <-chan struct{})) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", anyPort(host))
	require.NoError(t, err)
	r := &rawTCP{ln: ln, done: make(chan struct{})}
	r.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.cs = append(r.cs, c)
			r.mu.Unlock()
			r.wg.Go(func() { handle(c, r.done) })
		}
	})
	t.Cleanup(func() {
		close(r.done)
		_ = ln.Close()
		r.mu.Lock()
		for _, c := range r.cs {
			_ = c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return uriOf("tcp", ln.Addr(), "")
}

// startRawUDP binds a UDP socket on host and calls handle, in one
// goroutine, for each datagram. It returns the udp:// URI of the socket.
func startRawUDP(t *testing.T, host string, handle func(pc *net.UDPConn, b []byte, src netip.AddrPort, done <-chan struct{})) *url.URL {
	t.Helper()
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(host), 0)))
	require.NoError(t, err)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, src, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			handle(pc, append([]byte(nil), buf[:n]...), src, done)
		}
	})
	t.Cleanup(func() {
		close(done)
		_ = pc.Close()
		wg.Wait()
	})
	return uriOf("udp", pc.LocalAddr(), "")
}

// startHTTP serves h on host with httptest and returns the server's URL
// with path.
func startHTTP(t *testing.T, host string, h http.Handler, path string) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", anyPort(host))
	require.NoError(t, err)
	s := httptest.NewUnstartedServer(h)
	_ = s.Listener.Close()
	s.Listener = ln
	s.Start()
	t.Cleanup(s.Close)
	return uriOf("http", ln.Addr(), path)
}

// startHTTPS serves h on host with httptest over TLS and returns the
// server, whose Client trusts its certificate, and its URL with path.
func startHTTPS(t *testing.T, host string, h http.Handler, path string) (*httptest.Server, *url.URL) {
	t.Helper()
	ln, err := net.Listen("tcp", anyPort(host))
	require.NoError(t, err)
	s := httptest.NewUnstartedServer(h)
	_ = s.Listener.Close()
	s.Listener = ln
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes a test fails on purpose
	s.StartTLS()
	t.Cleanup(s.Close)
	return s, uriOf("https", ln.Addr(), path)
}

// refusedURI returns a URI of scheme on host for a port where nothing
// listens: it binds a port and lets it go.
func refusedURI(t *testing.T, scheme, host string) *url.URL {
	t.Helper()
	var a net.Addr
	if scheme == "udp" {
		pc, err := net.ListenPacket("udp", anyPort(host))
		require.NoError(t, err)
		a = pc.LocalAddr()
		require.NoError(t, pc.Close())
	} else {
		ln, err := net.Listen("tcp", anyPort(host))
		require.NoError(t, err)
		a = ln.Addr()
		require.NoError(t, ln.Close())
	}
	return uriOf(scheme, a, "/healthz")
}

// silentTCP accepts connections and reads from them, never answering. Each
// time a connection's first byte arrives it sends on got (if there is
// room), so a test knows the probe is waiting for its reply.
func silentTCP(t *testing.T, host string) (u *url.URL, got <-chan struct{}) {
	ch := make(chan struct{}, 16)
	u = startRawTCP(t, host, func(c net.Conn, _ <-chan struct{}) {
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			return
		}
		select {
		case ch <- struct{}{}:
		default:
		}
		_, _ = io.Copy(io.Discard, c) // until the prober or cleanup closes
	})
	return u, ch
}

// silentUDP reads datagrams and never answers; got as for silentTCP.
func silentUDP(t *testing.T, host string) (u *url.URL, got <-chan struct{}) {
	ch := make(chan struct{}, 16)
	u = startRawUDP(t, host, func(_ *net.UDPConn, _ []byte, _ netip.AddrPort, _ <-chan struct{}) {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	return u, ch
}

// wait fails the test if ch yields nothing within bound.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(bound):
		require.FailNow(t, "timed out waiting for "+what)
	}
	var zero T
	return zero
}

// requireTimeout asserts err says the probe ran out of its own time, and
// not that the caller cancelled it or the peer answered wrongly.
func requireTimeout(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "want a timeout, got %v", err)
	require.NotErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, healthcheck.ErrUnhealthy)
}

// requireClosedByPeer reads from c until the peer closes it, failing the
// test if that takes longer than bound or c yields data.
func requireClosedByPeer(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(bound)))
	var b [16]byte
	n, err := c.Read(b[:])
	require.Zero(t, n, "peer sent % x instead of closing", b[:n])
	require.Truef(t, errors.Is(err, io.EOF) || isReset(err), "want the peer to close the connection, got %v", err)
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
