package healthcheck_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pirlan/pir/healthcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// server is what the three servers have in common.
type server interface {
	Start(addr string) error
	Addr() netip.AddrPort
	URI() *url.URL
	SetHealthy(bool)
	Check() error
	Close() error
}

var serverKinds = []struct {
	scheme string
	new    func(healthcheck.ServerConfig) server
}{
	{"tcp", func(c healthcheck.ServerConfig) server { return healthcheck.NewTCPServer(c) }},
	{"udp", func(c healthcheck.ServerConfig) server { return healthcheck.NewUDPServer(c) }},
	{"http", func(c healthcheck.ServerConfig) server { return healthcheck.NewHTTPServer(c) }},
}

// startServer starts a server of the given kind on host and closes it
// when the test ends.
func startServer[S server](t *testing.T, s S, host string) S {
	t.Helper()
	require.NoError(t, s.Start(anyPort(host)))
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s
}

func TestServerLifecycle(t *testing.T) {
	for _, k := range serverKinds {
		t.Run(k.scheme, func(t *testing.T) {
			t.Run("CloseBeforeStart", func(t *testing.T) {
				s := k.new(healthcheck.ServerConfig{})
				assert.Nil(t, s.URI())
				assert.False(t, s.Addr().IsValid())
				require.NoError(t, s.Close())
				require.NoError(t, s.Close())
				require.ErrorIs(t, s.Start("127.0.0.1:0"), healthcheck.ErrServerClosed)
			})
			t.Run("StartTwice", func(t *testing.T) {
				s := k.new(healthcheck.ServerConfig{})
				require.NoError(t, s.Start("127.0.0.1:0"))
				require.ErrorIs(t, s.Start("127.0.0.1:0"), healthcheck.ErrServerStarted)
				require.NoError(t, s.Close())
				require.NoError(t, s.Close())
				require.ErrorIs(t, s.Start("127.0.0.1:0"), healthcheck.ErrServerClosed)
				goleak.VerifyNone(t)
			})
			t.Run("StartFails", func(t *testing.T) {
				s := k.new(healthcheck.ServerConfig{})
				require.Error(t, s.Start("not an address"))
				require.NoError(t, s.Close())
			})
			t.Run("InvalidConfig", func(t *testing.T) {
				s := k.new(healthcheck.ServerConfig{ReadTimeout: -1, MaxConns: -1, Path: "healthz"})
				err := s.Start("127.0.0.1:0")
				require.ErrorIs(t, err, healthcheck.ErrInvalidConfig)
				for _, field := range []string{"ReadTimeout", "MaxConns", "Path"} {
					assert.Contains(t, err.Error(), field)
				}
				require.NoError(t, s.Close())
			})
			t.Run("ConcurrentClose", func(t *testing.T) {
				s := k.new(healthcheck.ServerConfig{})
				require.NoError(t, s.Start("127.0.0.1:0"))
				errs := make(chan error, 4)
				for range cap(errs) {
					go func() { errs <- s.Close() }()
				}
				for range cap(errs) {
					require.NoError(t, wait(t, errs, "Close"))
				}
				goleak.VerifyNone(t)
			})
			forEachLoopback(t, func(t *testing.T, host string) {
				s := startServer(t, k.new(healthcheck.ServerConfig{}), host)
				ap := s.Addr()
				require.True(t, ap.IsValid())
				assert.Equal(t, netip.MustParseAddr(host), ap.Addr())
				assert.NotZero(t, ap.Port())
				u := s.URI()
				require.NotNil(t, u)
				assert.Equal(t, k.scheme, u.Scheme)
				assert.Equal(t, ap.String(), u.Host)
				back, err := url.Parse(u.String())
				require.NoError(t, err)
				assert.Equal(t, u, back, "URI does not survive url.Parse(u.String())")
				if k.scheme == "http" {
					assert.Equal(t, healthcheck.DefaultPath, u.Path)
				}
			})
		})
	}
}

// Check says in process what a probe of the server says over the
// network: not started, healthy, set unhealthy (the TCP and HTTP probes
// read ErrUnhealthy too; an unhealthy UDPServer does not answer), healthy
// again, closed.
func TestServerCheck(t *testing.T) {
	for _, k := range serverKinds {
		t.Run(k.scheme, func(t *testing.T) {
			s := k.new(healthcheck.ServerConfig{})
			require.ErrorIs(t, s.Check(), healthcheck.ErrServerNotStarted)
			require.NoError(t, s.Start("127.0.0.1:0"))
			p := healthcheck.NewRegistry()
			probe := func(timeout time.Duration) error {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				return p.Probe(ctx, s.URI())
			}
			require.NoError(t, s.Check())
			require.NoError(t, probe(10*time.Second))

			s.SetHealthy(false)
			require.ErrorIs(t, s.Check(), healthcheck.ErrUnhealthy)
			if k.scheme == "udp" {
				require.ErrorIs(t, probe(300*time.Millisecond), os.ErrDeadlineExceeded, "no answer")
			} else {
				require.ErrorIs(t, probe(10*time.Second), healthcheck.ErrUnhealthy)
			}

			s.SetHealthy(true)
			require.NoError(t, s.Check())
			require.NoError(t, probe(10*time.Second))

			require.NoError(t, s.Close())
			require.ErrorIs(t, s.Check(), healthcheck.ErrServerClosed)
		})
	}
}

func TestTCPServer(t *testing.T) {
	forEachLoopback(t, func(t *testing.T, host string) {
		t.Run("Answers", func(t *testing.T) {
			s := startServer(t, healthcheck.NewTCPServer(healthcheck.ServerConfig{}), host)
			c := dialTCP(t, s.Addr())
			_, err := c.Write([]byte{0x00})
			require.NoError(t, err)
			require.NoError(t, c.SetReadDeadline(time.Now().Add(bound)))
			got, err := io.ReadAll(c)
			require.NoError(t, err)
			assert.Equal(t, []byte{0x00}, got, "want one 0x00, then the close")
		})
		t.Run("WrongByteNotAnswered", func(t *testing.T) {
			s := startServer(t, healthcheck.NewTCPServer(healthcheck.ServerConfig{}), host)
			c := dialTCP(t, s.Addr())
			_, err := c.Write([]byte{0x01})
			require.NoError(t, err)
			requireClosedByPeer(t, c)
		})
		t.Run("UnhealthyNotAnswered", func(t *testing.T) {
			s := startServer(t, healthcheck.NewTCPServer(healthcheck.ServerConfig{}), host)
			s.SetHealthy(false)
			assert.False(t, s.Healthy())
			c := dialTCP(t, s.Addr())
			_, err := c.Write([]byte{0x00})
			require.NoError(t, err)
			requireClosedByPeer(t, c)
		})
		t.Run("IdleClosedAfterReadTimeout", func(t *testing.T) {
			s := startServer(t, healthcheck.NewTCPServer(healthcheck.ServerConfig{ReadTimeout: 100 * time.Millisecond}), host)
			requireClosedByPeer(t, dialTCP(t, s.Addr()))
		})
		t.Run("MaxConns", func(t *testing.T) {
			const max = 2
			s := startServer(t, healthcheck.NewTCPServer(healthcheck.ServerConfig{ReadTimeout: longTimeout, FirstByteTimeout: -1, MaxConns: max}), host)
			held := make([]net.Conn, max)
			for i := range held {
				held[i] = dialTCP(t, s.Addr())
			}
			// The server accepts in order, so the extra connection comes
			// after the held ones have taken every slot.
			requireRefused(t, s.Addr())
			// The held connections are served all the same.
			requireProbeAnswered(t, held[0])
			// Their slot is free once the server has closed them.
			requireClosedByPeer(t, held[0])
			requireProbeAnswered(t, dialTCP(t, s.Addr()))
		})
		t.Run("CloseClosesOpenConnections", func(t *testing.T) {
			s := healthcheck.NewTCPServer(healthcheck.ServerConfig{ReadTimeout: longTimeout, FirstByteTimeout: -1, MaxConns: 1})
			require.NoError(t, s.Start(anyPort(host)))
			t.Cleanup(func() { _ = s.Close() })
			idle := dialTCP(t, s.Addr())
			// With MaxConns 1, the next connection being turned away shows
			// the idle one is being served.
			requireRefused(t, s.Addr())
			require.NoError(t, s.Close())
			requireClosedByPeer(t, idle)
			goleak.VerifyNone(t)
		})
	})
}

func dialTCP(t *testing.T, ap netip.AddrPort) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ap.String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// requireRefused connects to ap and expects the server to turn the
// connection away: a reset, which may come before Dial returns, or a
// close.
func requireRefused(t *testing.T, ap netip.AddrPort) {
	t.Helper()
	c, err := net.Dial("tcp", ap.String())
	if err != nil {
		require.Truef(t, isReset(err), "want a reset, got %v", err)
		return
	}
	t.Cleanup(func() { _ = c.Close() })
	requireClosedByPeer(t, c)
}

// requireProbeAnswered sends the pir probe on c and expects 0x00 back.
func requireProbeAnswered(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(bound)))
	_, err := c.Write([]byte{0x00})
	require.NoError(t, err)
	var b [1]byte
	_, err = io.ReadFull(c, b[:])
	require.NoError(t, err)
	require.Equal(t, byte(0x00), b[0])
}

func TestUDPServer(t *testing.T) {
	forEachLoopback(t, func(t *testing.T, host string) {
		t.Run("AnswersOnlyProbes", func(t *testing.T) {
			s := startServer(t, healthcheck.NewUDPServer(healthcheck.ServerConfig{}), host)
			c, err := net.Dial("udp", s.Addr().String())
			require.NoError(t, err)
			defer c.Close()
			require.NoError(t, c.SetDeadline(time.Now().Add(bound)))
			// The server handles datagrams in order: were it to answer
			// any of the first three, that answer would come first.
			for _, b := range [][]byte{{0x01}, {0x00, 0x00}, {}, {0x00}} {
				_, err := c.Write(b)
				require.NoError(t, err)
			}
			buf := make([]byte, 64)
			n, err := c.Read(buf)
			require.NoError(t, err)
			assert.Equal(t, []byte{0x00}, buf[:n])
		})
		t.Run("UnhealthyIsSilent", func(t *testing.T) {
			s := startServer(t, healthcheck.NewUDPServer(healthcheck.ServerConfig{}), host)
			s.SetHealthy(false)
			assert.False(t, s.Healthy())
			p := healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: shortTimeout})
			requireTimeout(t, p.Probe(context.Background(), s.URI()))
		})
		t.Run("CloseStopsAnswering", func(t *testing.T) {
			s := healthcheck.NewUDPServer(healthcheck.ServerConfig{})
			require.NoError(t, s.Start(anyPort(host)))
			p := healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: longTimeout})
			require.NoError(t, p.Probe(context.Background(), s.URI()))
			require.NoError(t, s.Close())
			require.Error(t, p.Probe(context.Background(), s.URI()))
			goleak.VerifyNone(t)
		})
	})
}

func TestHTTPServer(t *testing.T) {
	forEachLoopback(t, func(t *testing.T, host string) {
		s := startServer(t, healthcheck.NewHTTPServer(healthcheck.ServerConfig{}), host)
		u := s.URI()
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		do := func(method, path string) (*http.Response, string) {
			t.Helper()
			req, err := http.NewRequest(method, "http://"+u.Host+path, nil)
			require.NoError(t, err)
			resp, err := client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			return resp, string(body)
		}

		p := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: longTimeout})
		resp, body := do(http.MethodGet, "/healthz")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "ok", body)
		assert.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
		assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		assert.Equal(t, int64(2), resp.ContentLength)
		assert.True(t, resp.Close, "want Connection: close")
		assert.NotEmpty(t, resp.Header.Get("Date"))
		require.NoError(t, p.Probe(context.Background(), u))
		resp, body = do(http.MethodHead, "/healthz")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Empty(t, body)
		resp, _ = do(http.MethodPost, "/healthz")
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
		resp, _ = do(http.MethodGet, "/other")
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
		resp, body = do(http.MethodGet, "/healthz?verbose=1")
		assert.Equal(t, http.StatusOK, resp.StatusCode, "the query is ignored")
		assert.Equal(t, "ok", body)

		s.SetHealthy(false)
		resp, body = do(http.MethodGet, "/healthz")
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Equal(t, "unhealthy", body)
		assert.Equal(t, int64(len("unhealthy")), resp.ContentLength)
		resp, body = do(http.MethodHead, "/healthz")
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Empty(t, body)
		err := p.Probe(context.Background(), u)
		require.ErrorIs(t, err, healthcheck.ErrUnhealthy)
		assert.Contains(t, err.Error(), "503 Service Unavailable")
		s.SetHealthy(true)
		resp, _ = do(http.MethodGet, "/healthz")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, p.Probe(context.Background(), u))
	})

	// Requests no HTTP client library would send, written byte by byte;
	// each reply must be whole and end with the server's close.
	t.Run("Raw", func(t *testing.T) {
		s := startServer(t, healthcheck.NewHTTPServer(healthcheck.ServerConfig{ReadTimeout: longTimeout}), "127.0.0.1")
		for _, tc := range []struct {
			name, req string
			status    int
			body      string
		}{
			{"HTTP10NoHost", "GET /healthz HTTP/1.0\r\n\r\n", 200, "ok"},
			{"HTTP11NoHost", "GET /healthz HTTP/1.1\r\n\r\n", 400, "Bad Request"},
			{"TwoHosts", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "Bad Request"},
			{"BareLF", "GET /healthz HTTP/1.1\nHost: x\n\n", 200, "ok"},
			{"AbsoluteForm", "GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ok"},
			{"Escaped", "GET /health%7A HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ok"},
			{"HEAD", "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, ""},
			{"HEADUnknownPath", "HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n", 404, ""},
			{"Garbage", "\x00\x01\x02\r\n\r\n", 400, "Bad Request"},
			{"HTTP2Preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "Bad Request"},
			{"BadHeader", "GET /healthz HTTP/1.1\r\nHost x\r\n\r\n", 400, "Bad Request"},
			{"Oversize", "GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("x", 8<<10) + "\r\n\r\n", 431, "Request Header Fields Too Large"},
			// A body and a second request are not read; the reply still
			// comes whole, before the close.
			{"WithBody", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 32768\r\n\r\n" + strings.Repeat("x", 32<<10), 405, "Method Not Allowed"},
			{"Pipelined", strings.Repeat("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 2), 200, "ok"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := dialTCP(t, s.Addr())
				require.NoError(t, c.SetDeadline(time.Now().Add(bound)))
				_, err := io.WriteString(c, tc.req)
				require.NoError(t, err)
				br := bufio.NewReader(c)
				method := strings.Fields(tc.req + " x")[0]
				resp, err := http.ReadResponse(br, &http.Request{Method: method})
				require.NoError(t, err)
				body, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				assert.Equal(t, tc.status, resp.StatusCode)
				assert.Equal(t, tc.body, string(body))
				_, err = br.ReadByte()
				require.ErrorIs(t, err, io.EOF, "want the server's close after one reply")
			})
		}
	})

	t.Run("CustomPath", func(t *testing.T) {
		s := startServer(t, healthcheck.NewHTTPServer(healthcheck.ServerConfig{Path: "/live"}), "127.0.0.1")
		assert.Equal(t, "/live", s.URI().Path)
		p := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: shortTimeout})
		require.NoError(t, p.Probe(context.Background(), s.URI()))
	})

	t.Run("IdleClosedAfterReadTimeout", func(t *testing.T) {
		s := startServer(t, healthcheck.NewHTTPServer(healthcheck.ServerConfig{ReadTimeout: 100 * time.Millisecond}), "127.0.0.1")
		requireClosedByPeer(t, dialTCP(t, s.Addr()))
	})

	t.Run("CloseClosesOpenConnections", func(t *testing.T) {
		s := healthcheck.NewHTTPServer(healthcheck.ServerConfig{ReadTimeout: longTimeout})
		require.NoError(t, s.Start("127.0.0.1:0"))
		// A connection that has sent part of its request: the server is
		// certainly serving it, waiting for the rest.
		c := dialTCP(t, s.Addr())
		require.NoError(t, c.SetDeadline(time.Now().Add(bound)))
		_, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\n")
		require.NoError(t, err)
		require.Eventually(t, func() bool { return s.Stats().Open == 1 }, bound, time.Millisecond)

		require.NoError(t, s.Close())
		_, err = c.Read(make([]byte, 1))
		require.Truef(t, err == io.EOF || isReset(err), "want the server to close the connection, got %v", err)
		goleak.VerifyNone(t)
	})
}

// dialFrom connects to ap from the loopback address src (any of 127/8).
func dialFrom(t *testing.T, src string, ap netip.AddrPort) (net.Conn, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", ap.String())
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

// requireOpen waits until s counts n open connections: it has admitted
// every connection dialled so far.
func requireOpen(t *testing.T, s countingServer, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return s.Stats().Open == n }, bound, time.Millisecond,
		"want %d open connections, have %+v", n, s.Stats())
}

// requireReset expects c, or the Dial that made it (err), to end in a
// reset or a close by the server.
func requireReset(t *testing.T, c net.Conn, err error) {
	t.Helper()
	if err != nil {
		require.Truef(t, isReset(err), "want a reset, got %v", err)
		return
	}
	requireClosedByPeer(t, c)
}

// countingServer is a server that counts its connections: the TCPServer
// and the HTTPServer.
type countingServer interface {
	server
	Stats() healthcheck.ServerStats
}

// TestServerPerSourceCap: an unknown source may hold MaxConnsPerSource
// connections; another source, and a known one, still get in.
func TestServerPerSourceCap(t *testing.T) {
	for _, k := range []struct {
		name string
		new  func(healthcheck.ServerConfig) countingServer
	}{
		{"tcp", func(c healthcheck.ServerConfig) countingServer { return healthcheck.NewTCPServer(c) }},
		{"http", func(c healthcheck.ServerConfig) countingServer { return healthcheck.NewHTTPServer(c) }},
	} {
		t.Run(k.name, func(t *testing.T) {
			known := netip.MustParseAddr("127.0.0.3")
			s := startServer(t, k.new(healthcheck.ServerConfig{
				ReadTimeout: longTimeout, FirstByteTimeout: -1, MaxConnsPerSource: 2,
				Known: func(a netip.Addr) bool { return a == known },
			}), "127.0.0.1")
			for range 2 {
				_, err := dialFrom(t, "127.0.0.1", s.Addr())
				require.NoError(t, err)
			}
			requireOpen(t, s, 2)
			c, err := dialFrom(t, "127.0.0.1", s.Addr())
			requireReset(t, c, err)
			assert.Equal(t, uint64(1), s.Stats().Refused)
			// Another unknown source has a cap of its own.
			_, err = dialFrom(t, "127.0.0.2", s.Addr())
			require.NoError(t, err)
			requireOpen(t, s, 3)
			// A known source has none.
			for range 3 {
				_, err := dialFrom(t, known.String(), s.Addr())
				require.NoError(t, err)
			}
			requireOpen(t, s, 6)
			assert.Equal(t, uint64(1), s.Stats().Refused)
		})
	}
}

// TestServerFirstByteTimeout: a connection that sends nothing is reset
// after FirstByteTimeout, long before ReadTimeout; one whose first byte
// came in time has the rest of ReadTimeout.
func TestServerFirstByteTimeout(t *testing.T) {
	cfg := healthcheck.ServerConfig{ReadTimeout: longTimeout, FirstByteTimeout: 50 * time.Millisecond}
	t.Run("tcp", func(t *testing.T) {
		s := startServer(t, healthcheck.NewTCPServer(cfg), "127.0.0.1")
		requireClosedByPeer(t, dialTCP(t, s.Addr())) // within bound, not longTimeout
		requireOpen(t, s, 0)
		requireProbeAnswered(t, dialTCP(t, s.Addr()))
	})
	t.Run("http", func(t *testing.T) {
		s := startServer(t, healthcheck.NewHTTPServer(cfg), "127.0.0.1")
		requireClosedByPeer(t, dialTCP(t, s.Addr()))
		requireOpen(t, s, 0)

		// The request's first byte lifts the first-byte deadline: the
		// rest may come later (http.Server's own deadlines, from
		// ReadTimeout, apply again).
		c := dialTCP(t, s.Addr())
		require.NoError(t, c.SetDeadline(time.Now().Add(bound)))
		_, err := io.WriteString(c, "G")
		require.NoError(t, err)
		// Send the rest well past the first-byte deadline. A server that
		// kept that deadline after the first byte would have reset the
		// connection by then; a slow machine only makes the wait longer,
		// so it cannot make a correct server fail.
		<-time.After(4 * cfg.FirstByteTimeout)
		_, err = io.WriteString(c, "ET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
}

// TestServerKnownReserve: unknown sources together get MaxConns less
// KnownReserve; known sources get the rest, and when the server is full
// a known source's connection takes the place of the oldest unknown
// connection that has sent nothing.
func TestServerKnownReserve(t *testing.T) {
	known := netip.MustParseAddr("127.0.0.3")
	s := startServer(t, healthcheck.NewTCPServer(healthcheck.ServerConfig{
		ReadTimeout: longTimeout, FirstByteTimeout: -1, MaxConns: 4, KnownReserve: 2, MaxConnsPerSource: -1,
		Known: func(a netip.Addr) bool { return a == known },
	}), "127.0.0.1")

	oldest, err := dialFrom(t, "127.0.0.1", s.Addr())
	require.NoError(t, err)
	requireOpen(t, s, 1)
	_, err = dialFrom(t, "127.0.0.2", s.Addr())
	require.NoError(t, err)
	requireOpen(t, s, 2)
	// The unknown share is taken: a third unknown connection is refused.
	c, err := dialFrom(t, "127.0.0.4", s.Addr())
	requireReset(t, c, err)
	// The reserve takes two known ones.
	for range 2 {
		_, err := dialFrom(t, known.String(), s.Addr())
		require.NoError(t, err)
	}
	requireOpen(t, s, 4)
	assert.Equal(t, healthcheck.ServerStats{Accepted: 4, Refused: 1, Open: 4}, s.Stats())

	// Full: a known source's probe evicts the oldest unknown connection,
	// and is answered.
	c, err = dialFrom(t, known.String(), s.Addr())
	require.NoError(t, err)
	requireProbeAnswered(t, c)
	requireClosedByPeer(t, oldest)
	st := s.Stats()
	assert.Equal(t, uint64(1), st.Evicted)
	assert.Equal(t, uint64(5), st.Accepted)
}
