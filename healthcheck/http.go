package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// HTTPConfig configures an HTTPProber.
type HTTPConfig struct {
	// Timeout bounds one probe: connect, TLS handshake, request, response
	// headers and the read of the body, redirects included. When the
	// probe's context has an earlier deadline, that one wins. Zero or
	// negative means DefaultTimeout (2s).
	Timeout time.Duration

	// Client sends the requests, for a custom TLS configuration or proxy.
	// The prober uses a shallow copy whose CheckRedirect applies the
	// prober's redirect rule before calling the client's own. Its Timeout
	// also applies. Nil means a private client with its own Transport that
	// uses no proxy and opens a new connection per probe, so that the
	// prober holds no idle connection (and no goroutine) between probes.
	Client *http.Client
}

// HTTPProber probes http:// and https:// URIs with a GET. The peer is
// healthy if the final response has a 2xx status. At most
// MaxHTTPRedirects redirects are followed, and only to the same host and
// port and never from https to http; any other redirect response is the
// final one, so it makes the probe fail with its 3xx status. Up to
// maxHTTPBody bytes of the body are read, so that a small reply can
// finish cleanly, and the body is always closed.
type HTTPProber struct {
	timeout time.Duration
	client  *http.Client
}

var (
	_ Prober          = (*HTTPProber)(nil)
	_ SchemeSupporter = (*HTTPProber)(nil)
)

// Supports reports whether scheme is http or https, in any case.
func (p *HTTPProber) Supports(scheme string) bool {
	switch strings.ToLower(scheme) {
	case "http", "https":
		return true
	}
	return false
}

// MaxHTTPRedirects is the number of same-host redirects an HTTPProber
// follows.
const MaxHTTPRedirects = 3

// maxHTTPBody caps what a probe reads of a response body.
const maxHTTPBody = 4 << 10

// NewHTTPProber returns an HTTPProber configured by cfg.
func NewHTTPProber(cfg HTTPConfig) *HTTPProber {
	var c http.Client
	if cfg.Client != nil {
		c = *cfg.Client
	} else {
		c.Transport = &http.Transport{
			Proxy:                  nil,
			DialContext:            (&net.Dialer{}).DialContext,
			DisableKeepAlives:      true,
			ForceAttemptHTTP2:      true,
			MaxResponseHeaderBytes: 16 << 10,
		}
	}
	c.CheckRedirect = sameHostRedirects(c.CheckRedirect)
	return &HTTPProber{timeout: timeoutOrDefault(cfg.Timeout), client: &c}
}

// sameHostRedirects returns a CheckRedirect function that stops at a
// redirect to another host or port, from https to http, or past
// MaxHTTPRedirects, and otherwise defers to next (nil: follow).
func sameHostRedirects(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		first := via[0].URL
		if len(via) > MaxHTTPRedirects ||
			!sameHost(first, req.URL) ||
			(first.Scheme == "https" && req.URL.Scheme != "https") {
			return http.ErrUseLastResponse
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
}

// sameHost reports whether a and b name the same host and port, a missing
// port standing for the scheme's default.
func sameHost(a, b *url.URL) bool {
	return strings.EqualFold(a.Hostname(), b.Hostname()) && portOrDefault(a) == portOrDefault(b)
}

func portOrDefault(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}

// Probe GETs target, for example http://192.0.2.1:8080/healthz. It returns
// nil for a 2xx response; an error wrapping ErrUnhealthy for any other
// status; an error wrapping ErrUnsupportedScheme for a scheme other than
// http or https; an error wrapping os.ErrDeadlineExceeded when Timeout
// runs out; an error wrapping ctx.Err() when ctx is done first.
func (p *HTTPProber) Probe(ctx context.Context, target *url.URL) error {
	if target == nil {
		return fmt.Errorf("%w: nil URI", ErrInvalidTarget)
	}
	if !p.Supports(target.Scheme) {
		return fmt.Errorf("%w: %q: the HTTP prober speaks http and https", ErrUnsupportedScheme, target.Scheme)
	}
	if target.Host == "" {
		return fmt.Errorf("%w: %q has no host", ErrInvalidTarget, target.Redacted())
	}
	where := target.Redacted()
	if err := ctxErr(ctx); err != nil {
		return fmt.Errorf("healthcheck: probe %s: %w", where, err)
	}
	rctx, cancel := context.WithDeadline(ctx, deadlineFor(ctx, p.timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidTarget, where, err)
	}
	req.Header.Set("User-Agent", "pir-healthcheck")
	resp, err := p.client.Do(req)
	if err != nil {
		return probeError(ctx, "GET", where, unwrapURLError(err))
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxHTTPBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w: GET %s: status %q", ErrUnhealthy, where, resp.Status)
	}
	if err != nil {
		return probeError(ctx, "read body of", where, err)
	}
	return nil
}

// unwrapURLError strips the *url.Error that http.Client wraps every error
// in: the message would repeat the method and URI that probeError adds.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// HealthHandler returns an http.Handler that answers a health probe: for
// GET and HEAD, 200 with the body "ok" when healthy reports true (or
// healthy is nil), and 503 with the body "unhealthy" otherwise; for any
// other method, 405 with an Allow header. Applications mount it on their
// own mux; HTTPServer serves it on its own listener.
func HealthHandler(healthy func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if healthy != nil && !healthy() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "unhealthy")
			return
		}
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "ok")
	})
}
