package healthcheck_test

import (
	"context"
	"io"
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
	t.Run("OtherHostNotFollowedWithCallerClient", func(t *testing.T) {
		var hit, checked atomic.Bool
		other := startHTTP(t, "127.0.0.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hit.Store(true)
		}), "/ok")
		u := startHTTP(t, "127.0.0.1", http.RedirectHandler(other.String(), http.StatusFound), "/")
		client := &http.Client{
			Transport: &http.Transport{DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				checked.Store(true)
				return nil
			},
		}
		cp := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: longTimeout, Client: client})
		require.ErrorIs(t, cp.Probe(context.Background(), u), healthcheck.ErrUnhealthy)
		assert.False(t, hit.Load(), "the prober followed a redirect to another host")
		assert.False(t, checked.Load(), "the client's own CheckRedirect ran for a redirect the prober refuses")
		assert.NotNil(t, client.CheckRedirect, "the caller's client was changed")
	})
	t.Run("CallerCheckRedirectConsulted", func(t *testing.T) {
		var checked atomic.Bool
		u := startHTTP(t, "127.0.0.1", redirects(map[string]string{"/a": "/ok"}), "/a")
		client := &http.Client{
			Transport: &http.Transport{DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				checked.Store(true)
				return http.ErrUseLastResponse
			},
		}
		cp := healthcheck.NewHTTPProber(healthcheck.HTTPConfig{Timeout: longTimeout, Client: client})
		require.ErrorIs(t, cp.Probe(context.Background(), u), healthcheck.ErrUnhealthy)
		assert.True(t, checked.Load())
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
	assert.True(t, ss.Supports("HTTPS"))
	assert.False(t, ss.Supports("ftp"))
	assert.False(t, ss.Supports("tcp"))
	require.ErrorIs(t, p.Probe(context.Background(), &url.URL{Scheme: "ftp", Host: "127.0.0.1:21"}), healthcheck.ErrUnsupportedScheme)
	require.ErrorIs(t, p.Probe(context.Background(), &url.URL{Scheme: "http", Path: "/x"}), healthcheck.ErrInvalidTarget)
	require.ErrorIs(t, p.Probe(context.Background(), nil), healthcheck.ErrInvalidTarget)
}
