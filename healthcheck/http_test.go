package healthcheck_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pirlan/pir/healthcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func statusHandler(code int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) })
}

func TestHTTPProber(t *testing.T) {
	forEachLoopback(t, func(t *testing.T, host string) {
		t.Run("Healthy", func(t *testing.T) {
			var got atomic.Pointer[http.Request]
			u := startHTTP(t, host, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got.Store(r)
				_, _ = io.WriteString(w, "ok")
			}), "/healthz")
			p := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: shortTimeout})
			require.NoError(t, p.Probe(context.Background(), u))
			r := got.Load()
			require.NotNil(t, r)
			assert.Equal(t, http.MethodGet, r.Method)
			assert.Equal(t, "/healthz", r.URL.Path)
		})
		for _, code := range []int{http.StatusOK, http.StatusNoContent, 299} {
			t.Run("Status"+strconv.Itoa(code), func(t *testing.T) {
				u := startHTTP(t, host, statusHandler(code), "/")
				p := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: shortTimeout})
				require.NoError(t, p.Probe(context.Background(), u))
			})
		}
		for _, code := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusNotFound, http.StatusNotModified, http.StatusFound} {
			t.Run("Status"+strconv.Itoa(code), func(t *testing.T) {
				u := startHTTP(t, host, statusHandler(code), "/")
				p := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: shortTimeout})
				err := p.Probe(context.Background(), u)
				require.ErrorIs(t, err, healthcheck.ErrUnhealthy)
				assert.Contains(t, err.Error(), strconv.Itoa(code))
			})
		}
		t.Run("LargeBody", func(t *testing.T) {
			// The prober reads a little of the body and closes it: a huge
			// body neither fails the probe nor makes it wait.
			u := startHTTP(t, host, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				chunk := strings.Repeat("x", 32<<10)
				for range 1024 {
					if _, err := io.WriteString(w, chunk); err != nil {
						return
					}
				}
			}), "/")
			p := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: longTimeout})
			require.NoError(t, p.Probe(context.Background(), u))
		})
		t.Run("Refused", func(t *testing.T) {
			p := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: longTimeout})
			err := p.Probe(context.Background(), refusedURI(t, "http", host))
			require.ErrorIs(t, err, syscall.ECONNREFUSED)
		})
		t.Run("Silent", func(t *testing.T) {
			u, _ := silentTCP(t, host)
			u.Scheme = "http"
			p := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: shortTimeout})
			requireTimeout(t, p.Probe(context.Background(), u))
		})
		t.Run("SlowButInTime", func(t *testing.T) {
			u := startHTTP(t, host, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tm := time.NewTimer(50 * time.Millisecond)
				defer tm.Stop()
				select {
				case <-tm.C:
				case <-r.Context().Done():
				}
			}), "/")
			p := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: longTimeout})
			require.NoError(t, p.Probe(context.Background(), u))
		})
		t.Run("SlowerThanTimeout", func(t *testing.T) {
			u := startHTTP(t, host, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done() // until the prober hangs up
			}), "/")
			p := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: shortTimeout})
			requireTimeout(t, p.Probe(context.Background(), u))
		})
		t.Run("ContextDeadlineSoonerThanTimeout", func(t *testing.T) {
			u, _ := silentTCP(t, host)
			u.Scheme = "http"
			p := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: longTimeout})
			ctx, cancel := context.WithTimeout(context.Background(), shortTimeout)
			defer cancel()
			start := time.Now()
			require.ErrorIs(t, p.Probe(ctx, u), context.DeadlineExceeded)
			assert.Less(t, time.Since(start), longTimeout/2, "the probe waited for its own timeout")
		})
		t.Run("CancelWhileWaiting", func(t *testing.T) {
			entered := make(chan struct{}, 1)
			u := startHTTP(t, host, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				entered <- struct{}{}
				<-r.Context().Done()
			}), "/")
			p := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: longTimeout})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- p.Probe(ctx, u) }()
			wait(t, entered, "the request")
			cancel()
			require.ErrorIs(t, wait(t, errc, "the probe to return after cancel"), context.Canceled)
		})
	})
}

// Every probe here ends for a reason other than the timeout (an answer or
// a refused redirect): longTimeout, so that the four requests of
// SameHostFollowed never race a clock on a loaded machine.
func TestHTTPProberRedirects(t *testing.T) {
	p := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: longTimeout})

	t.Run("SameHostFollowed", func(t *testing.T) {
		u := startHTTP(t, "127.0.0.1", redirects(map[string]string{"/a": "/b", "/b": "/c", "/c": "/ok"}), "/a")
		require.NoError(t, p.Probe(context.Background(), u))
	})
	t.Run("TooManyNotFollowed", func(t *testing.T) {
		u := startHTTP(t, "127.0.0.1", redirects(map[string]string{"/a": "/b", "/b": "/c", "/c": "/d", "/d": "/ok"}), "/a")
		err := p.Probe(context.Background(), u)
		require.ErrorIs(t, err, healthcheck.ErrUnhealthy)
		assert.Contains(t, err.Error(), "302")
	})
	t.Run("OtherHostNotFollowed", func(t *testing.T) {
		var hit atomic.Bool
		other := startHTTP(t, "127.0.0.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hit.Store(true)
		}), "/ok")
		u := startHTTP(t, "127.0.0.1", http.RedirectHandler(other.String(), http.StatusFound), "/")
		err := p.Probe(context.Background(), u)
		require.ErrorIs(t, err, healthcheck.ErrUnhealthy)
		assert.Contains(t, err.Error(), "302")
		assert.False(t, hit.Load(), "the prober followed a redirect to another host")
	})
	t.Run("OtherPortNotFollowed", func(t *testing.T) {
		// The same host on another port is another server.
		var hit atomic.Bool
		other := startHTTP(t, "127.0.0.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hit.Store(true)
		}), "/ok")
		u := startHTTP(t, "127.0.0.1", http.RedirectHandler("http://127.0.0.1:"+other.Port()+"/ok", http.StatusMovedPermanently), "/")
		err := p.Probe(context.Background(), u)
		require.ErrorIs(t, err, healthcheck.ErrUnhealthy)
		assert.Contains(t, err.Error(), "301")
		assert.False(t, hit.Load(), "the prober followed a redirect to another port")
	})
	t.Run("LoopBounded", func(t *testing.T) {
		var hits atomic.Int32
		u := startHTTP(t, "127.0.0.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			http.Redirect(w, r, "/loop", http.StatusTemporaryRedirect)
		}), "/loop")
		err := p.Probe(context.Background(), u)
		require.ErrorIs(t, err, healthcheck.ErrUnhealthy)
		assert.Contains(t, err.Error(), "307")
		assert.Equal(t, int32(1+healthcheck.MaxHTTPRedirects), hits.Load())
	})
	t.Run("AbsoluteSameHostFollowed", func(t *testing.T) {
		var base string
		u := startHTTP(t, "127.0.0.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/ok" {
				return
			}
			http.Redirect(w, r, base+"/ok?x=1", http.StatusSeeOther)
		}), "/a")
		base = "http://" + u.Host
		require.NoError(t, p.Probe(context.Background(), u))
	})
	t.Run("NotARedirect", func(t *testing.T) {
		// 300 and 304 name no place to go: they are final.
		u := startHTTP(t, "127.0.0.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/ok" {
				return
			}
			w.Header().Set("Location", "/ok")
			w.WriteHeader(http.StatusMultipleChoices)
		}), "/a")
		err := p.Probe(context.Background(), u)
		require.ErrorIs(t, err, healthcheck.ErrUnhealthy)
		assert.Contains(t, err.Error(), "300")
	})
}

// redirects answers each path in m with a 302 to its value, and /ok with
// 200.
func redirects(m map[string]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if to, ok := m[r.URL.Path]; ok {
			http.Redirect(w, r, to, http.StatusFound)
			return
		}
		if r.URL.Path == "/ok" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		http.NotFound(w, r)
	})
}

func TestHTTPProberBadTargets(t *testing.T) {
	p := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: longTimeout})
	var ss healthcheck.SchemeSupporter = p
	assert.True(t, ss.Supports("http"))
	assert.True(t, ss.Supports("HTTP"))
	assert.False(t, ss.Supports("https"), "https without a DialTLS")
	assert.False(t, ss.Supports("ftp"))
	assert.False(t, ss.Supports("tcp"))
	require.ErrorIs(t, p.Probe(context.Background(), &url.URL{Scheme: "ftp", Host: "127.0.0.1:21"}), healthcheck.ErrUnsupportedScheme)
	require.ErrorIs(t, p.Probe(context.Background(), &url.URL{Scheme: "https", Host: "127.0.0.1:443"}), healthcheck.ErrUnsupportedScheme)
	require.ErrorIs(t, p.Probe(context.Background(), &url.URL{Scheme: "http", Path: "/x"}), healthcheck.ErrInvalidTarget)
	require.ErrorIs(t, p.Probe(context.Background(), nil), healthcheck.ErrInvalidTarget)
	for _, u := range []*url.URL{
		{Scheme: "http", Host: "127.0.0.1:0", Path: "/"},
		{Scheme: "http", Host: "127.0.0.1:99999", Path: "/"},
		{Scheme: "http", Host: "bad\r\nhost:80", Path: "/"},
		{Scheme: "http", Host: "127.0.0.1:80", Opaque: "/a b"},
	} {
		err := p.Probe(context.Background(), u)
		require.ErrorIs(t, err, healthcheck.ErrInvalidTarget, "%#v", u)
	}
	// A password never reaches an error message.
	err := p.Probe(context.Background(), &url.URL{Scheme: "http", User: url.UserPassword("u", "secret"), Host: "127.0.0.1:0"})
	require.ErrorIs(t, err, healthcheck.ErrInvalidTarget)
	assert.NotContains(t, err.Error(), "secret")
}

// TestHTTPProberTLS probes an httptest TLS server through a DialTLS that
// trusts the server's certificate, valid for 127.0.0.1 and ::1.
func TestHTTPProberTLS(t *testing.T) {
	forEachLoopback(t, func(t *testing.T, host string) {
		srv, u := startHTTPS(t, host, redirects(map[string]string{"/a": "/ok"}), "/a")
		cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig
		p := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{
			Timeout: longTimeout,
			DialTLS: (&tls.Dialer{Config: cfg}).DialContext,
		})
		assert.True(t, p.Supports("https"))
		t.Run("Healthy", func(t *testing.T) {
			require.NoError(t, p.Probe(context.Background(), u))
		})
		t.Run("Unhealthy", func(t *testing.T) {
			v := *u
			v.Path = "/missing"
			err := p.Probe(context.Background(), &v)
			require.ErrorIs(t, err, healthcheck.ErrUnhealthy)
			assert.Contains(t, err.Error(), "404")
		})
		t.Run("UntrustedCertificate", func(t *testing.T) {
			// A DialTLS with the system roots does not trust httptest's
			// certificate: the probe fails, and not as an unhealthy reply.
			untrusting := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{
				Timeout: longTimeout,
				DialTLS: (&tls.Dialer{Config: &tls.Config{RootCAs: x509.NewCertPool()}}).DialContext,
			})
			err := untrusting.Probe(context.Background(), u)
			require.Error(t, err)
			require.NotErrorIs(t, err, healthcheck.ErrUnhealthy)
		})
		t.Run("WithoutDialTLS", func(t *testing.T) {
			plain := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: longTimeout})
			require.ErrorIs(t, plain.Probe(context.Background(), u), healthcheck.ErrUnsupportedScheme)
		})
		t.Run("HTTPSToHTTPNotFollowed", func(t *testing.T) {
			// The same host and port, but in clear: never followed. Were it
			// followed, the TLS server would answer the clear request with
			// a 400, not the 302 the probe reports.
			_, v := startHTTPS(t, host, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://"+r.Host+"/ok", http.StatusFound)
			}), "/")
			err := p.Probe(context.Background(), v)
			require.ErrorIs(t, err, healthcheck.ErrUnhealthy)
			assert.Contains(t, err.Error(), "302")
		})
	})
}

// TestHTTPProberWire plays servers that write raw bytes: what the prober
// sends, and what it makes of responses no well-behaved server writes.
func TestHTTPProberWire(t *testing.T) {
	p := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: longTimeout})
	// answer serves each connection: it reads the request head, sends it
	// on reqs (if there is room) and writes reply.
	answer := func(t *testing.T, reply string, reqs chan<- string) *url.URL {
		u := startRawTCP(t, "127.0.0.1", func(c net.Conn, _ <-chan struct{}) {
			defer c.Close()
			br := bufio.NewReader(c)
			var head strings.Builder
			for {
				line, err := br.ReadString('\n')
				head.WriteString(line)
				if err != nil || line == "\r\n" {
					break
				}
			}
			select {
			case reqs <- head.String():
			default:
			}
			_, _ = io.WriteString(c, reply)
		})
		u.Scheme, u.Path = "http", "/healthz"
		return u
	}
	t.Run("Request", func(t *testing.T) {
		reqs := make(chan string, 1)
		u := answer(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", reqs)
		u.RawQuery = "a=1"
		require.NoError(t, p.Probe(context.Background(), u))
		assert.Equal(t, "GET /healthz?a=1 HTTP/1.1\r\nHost: "+u.Host+"\r\nUser-Agent: pir-healthcheck\r\n"+
			"Accept: */*\r\nConnection: close\r\n\r\n", <-reqs)
	})
	for _, tc := range []struct {
		name, reply string
		healthy     bool
		want        string // in the error
	}{
		{"HTTP10CloseDelimited", "HTTP/1.0 200 OK\r\n\r\nok", true, ""},
		{"BareLF", "HTTP/1.1 204 No Content\n\n", true, ""},
		{"NoReason", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", true, ""},
		{"Interim", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true, ""},
		{"Chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n2\r\nok\r\n0\r\n\r\n", true, ""},
		{"Unhealthy", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 9\r\n\r\nunhealthy", false, "503 Service Unavailable"},
		{"HTTP2", "HTTP/2 200 OK\r\n\r\n", false, "malformed"},
		{"NotHTTP", "SSH-2.0-OpenSSH_9.6\r\n\r\n", false, "malformed"},
		{"TwoLengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok", false, "Content-Length"},
		{"BadLength", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, "Content-Length"},
		{"Folded", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", false, "folded"},
		{"TooManyInterim", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 6), false, "100"},
		{"Oversize", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("x", 16<<10) + "\r\n\r\n", false, "too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Probe(context.Background(), answer(t, tc.reply, nil))
			if tc.healthy {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, healthcheck.ErrUnhealthy)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	t.Run("ShortBody", func(t *testing.T) {
		// A 2xx whose body ends before its Content-Length: the reply
		// was cut, which is no healthy answer, nor an unhealthy one.
		err := p.Probe(context.Background(), answer(t, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", nil))
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		require.NotErrorIs(t, err, healthcheck.ErrUnhealthy)
	})
	t.Run("ClosedWithoutReply", func(t *testing.T) {
		err := p.Probe(context.Background(), answer(t, "", nil))
		require.ErrorIs(t, err, io.EOF)
	})
	t.Run("SlowHead", func(t *testing.T) {
		// The status line comes, the rest never does: the timeout ends it.
		u := startRawTCP(t, "127.0.0.1", func(c net.Conn, _ <-chan struct{}) {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n")
			_, _ = io.Copy(io.Discard, c) // until the prober hangs up
		})
		u.Scheme = "http"
		short := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: shortTimeout})
		requireTimeout(t, short.Probe(context.Background(), u))
	})
}
