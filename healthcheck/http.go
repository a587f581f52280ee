package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HTTPConfig configures an HTTPProber.
type HTTPConfig struct {
	// Timeout bounds one probe: connect, TLS handshake, request, response
	// head and the read of the body, redirects included. When the probe's
	// context has an earlier deadline, that one wins. Zero or negative
	// means DefaultTimeout (2s).
	Timeout time.Duration

	// DialTLS opens the TLS connection of an https probe to addr
	// ("host:port", network "tcp"), handshake included, within ctx: for
	// example (&tls.Dialer{Config: cfg}).DialContext, which takes the
	// server name to verify from addr when cfg.ServerName is empty. On a
	// LAN the member's certificate must then verify for the IP address it
	// announces, with whatever roots cfg trusts; that is the application's
	// choice, which is why there is no default. Nil means the prober
	// speaks http only: Supports("https") is false, and an https target
	// fails with ErrUnsupportedScheme. Leaving TLS out also keeps
	// crypto/tls out of programs that need none.
	DialTLS func(ctx context.Context, network, addr string) (net.Conn, error)
}

// HTTPProber probes http:// URIs, and https:// ones when its config has a
// DialTLS, with a GET over HTTP/1.1 on a connection of its own, which it
// closes after the response ("Connection: close"). The peer is healthy if
// the final response has a 2xx status. At most MaxHTTPRedirects redirects
// (301, 302, 303, 307, 308) are followed, each on a new connection, and
// only to the same host and port and never from https to http; any other
// redirect response is the final one, so it makes the probe fail with its
// 3xx status. The response head may take at most 16 KiB; up to
// maxHTTPBody bytes of the body are read, so that a small reply can
// finish cleanly.
//
// The prober implements what a health probe needs of HTTP/1.1 and no
// more, without net/http: no proxy, no keep-alive, no HTTP/2, no cookies,
// no compression.
type HTTPProber struct {
	timeout time.Duration
	dialTLS func(ctx context.Context, network, addr string) (net.Conn, error)
}

var (
	_ Prober          = (*HTTPProber)(nil)
	_ SchemeSupporter = (*HTTPProber)(nil)
)

// Supports reports whether scheme is http, or https when the prober has a
// DialTLS, in any case.
func (p *HTTPProber) Supports(scheme string) bool {
	switch strings.ToLower(scheme) {
	case "http":
		return true
	case "https":
		return p.dialTLS != nil
	}
	return false
}

// MaxHTTPRedirects is the number of same-host redirects an HTTPProber
// follows.
const MaxHTTPRedirects = 3

// maxHTTPBody caps what a probe reads of a response body.
const maxHTTPBody = 4 << 10

// maxInterim caps the interim (1xx) responses a probe reads before the
// final one.
const maxInterim = 4

// NewHTTPProber returns an HTTPProber configured by cfg.
func NewHTTPProber(cfg HTTPConfig) *HTTPProber {
	return &HTTPProber{timeout: timeoutOrDefault(cfg.Timeout), dialTLS: cfg.DialTLS}
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
// status, or a response that is not HTTP/1.x or whose head exceeds its
// bound; an error wrapping ErrUnsupportedScheme for a scheme other than
// http, or https without DialTLS; an error wrapping ErrInvalidTarget for a
// URI with no usable host, port or path; an error wrapping
// os.ErrDeadlineExceeded when Timeout runs out; an error wrapping
// ctx.Err() when ctx is done first. Messages carry the URI redacted (no
// password).
func (p *HTTPProber) Probe(ctx context.Context, target *url.URL) error {
	if target == nil {
		return fmt.Errorf("%w: nil URI", ErrInvalidTarget)
	}
	if !p.Supports(target.Scheme) {
		why := "the HTTP prober speaks http, and https when given a DialTLS"
		return fmt.Errorf("%w: %q: %s", ErrUnsupportedScheme, target.Scheme, why)
	}
	where := target.Redacted()
	if target.Host == "" {
		return fmt.Errorf("%w: %q has no host", ErrInvalidTarget, where)
	}
	if err := ctxErr(ctx); err != nil {
		return fmt.Errorf("healthcheck: probe %s: %w", where, err)
	}
	rctx, cancel := context.WithDeadline(ctx, deadlineFor(ctx, p.timeout))
	defer cancel()
	u := target
	for hops := 0; ; hops++ {
		h, err := p.get(ctx, rctx, u)
		if err != nil {
			return err
		}
		if h.status >= 200 && h.status <= 299 {
			return nil
		}
		next := p.redirect(target, u, h, hops)
		if next == nil {
			return fmt.Errorf("%w: GET %s: status %q", ErrUnhealthy, u.Redacted(), statusOf(h))
		}
		u = next
	}
}

// statusOf returns the status line's code and reason, the reason cut to
// 64 bytes.
func statusOf(h responseHead) string {
	s := strconv.Itoa(h.status)
	if h.reason != "" {
		s += " " + clip(h.reason)
	}
	return s
}

// redirect returns the URL a probe of first follows after the response h
// to a GET of cur, the hops-th redirect so far, or nil if it follows none:
// h is not a redirect, names no Location, or one that leads to another
// scheme, host or port, from https to http, or past MaxHTTPRedirects.
func (p *HTTPProber) redirect(first, cur *url.URL, h responseHead, hops int) *url.URL {
	switch h.status {
	case 301, 302, 303, 307, 308:
	default:
		return nil
	}
	if hops >= MaxHTTPRedirects || h.location == "" {
		return nil
	}
	loc, err := url.Parse(h.location)
	if err != nil {
		return nil
	}
	next := cur.ResolveReference(loc)
	if !p.Supports(next.Scheme) || !sameHost(first, next) ||
		(strings.EqualFold(first.Scheme, "https") && !strings.EqualFold(next.Scheme, "https")) {
		return nil
	}
	return next
}

// get sends one GET of u on a new connection and reads the response head
// and up to maxHTTPBody of its body. rctx, the probe's context, bounds it;
// ctx is the caller's, for the errors.
func (p *HTTPProber) get(ctx, rctx context.Context, u *url.URL) (responseHead, error) {
	where := u.Redacted()
	addr, req, err := httpRequest(u)
	if err != nil {
		return responseHead{}, err
	}
	c, err := p.dial(rctx, u.Scheme, addr)
	if err != nil {
		return responseHead{}, probeError(ctx, "connect to", where, err)
	}
	defer abortHTTP(c)
	dl, _ := rctx.Deadline()
	if err := c.SetDeadline(dl); err != nil {
		return responseHead{}, probeError(ctx, "connect to", where, err)
	}
	stop := context.AfterFunc(rctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := io.WriteString(c, req); err != nil {
		return responseHead{}, probeError(ctx, "GET", where, err)
	}
	var buf []byte
	limit := maxResponseHead
	for interim := 0; ; interim++ {
		var n int
		buf, n, err = readHead(c, buf, limit)
		if errors.Is(err, errHeadTooLarge) {
			return responseHead{}, fmt.Errorf("%w: GET %s: response %w", ErrUnhealthy, where, err)
		}
		if err != nil {
			return responseHead{}, probeError(ctx, "read response to GET", where, err)
		}
		h, err := parseResponseHead(buf[:n])
		if err != nil {
			return h, fmt.Errorf("%w: GET %s: %w", ErrUnhealthy, where, err)
		}
		buf, limit = buf[n:], limit-n // what is left of the bound is the next head's
		switch {
		case h.status < 200 && h.status != 101 && interim < maxInterim:
			continue // an interim response: the final one follows
		case h.status < 200, h.status == 204, h.status == 304:
			return h, nil // no body
		}
		err = readBody(c, buf, h.length)
		if err != nil && h.status >= 200 && h.status <= 299 {
			return h, probeError(ctx, "read body of", where, err)
		}
		return h, nil
	}
}

// abortHTTP closes a probe's connection with a reset, as abort does, the
// TCP connection under a TLS one (crypto/tls's Conn has NetConn) too.
func abortHTTP(c net.Conn) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		if t, ok := tc.NetConn().(*net.TCPConn); ok {
			_ = t.SetLinger(0)
		}
	}
	abort(c)
}

// readBody reads what is left of a body of length bytes (-1: until EOF),
// up to maxHTTPBody in all, of which have came with the head.
func readBody(r io.Reader, have []byte, length int64) error {
	want := int64(maxHTTPBody)
	if length >= 0 {
		want = min(want, length)
	}
	left := want - int64(len(have))
	if left <= 0 {
		return nil
	}
	n, err := io.Copy(io.Discard, io.LimitReader(r, left))
	if err == nil && n < left && length >= 0 {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// dial connects to addr: over TCP for http, through DialTLS for https.
func (p *HTTPProber) dial(ctx context.Context, scheme, addr string) (net.Conn, error) {
	if strings.EqualFold(scheme, "https") {
		return p.dialTLS(ctx, "tcp", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// httpRequest returns the address a probe of u dials and the request it
// sends. It fails, wrapping ErrInvalidTarget, for a URI whose host, port
// or request-target could not be sent as they are.
func httpRequest(u *url.URL) (addr, req string, err error) {
	where := u.Redacted()
	host, port := u.Hostname(), u.Port()
	if host == "" || u.Opaque != "" {
		return "", "", fmt.Errorf("%w: %q has no host", ErrInvalidTarget, where)
	}
	if !validHost(host) {
		return "", "", fmt.Errorf("%w: %q: bad host %q", ErrInvalidTarget, where, host)
	}
	dport := port
	if dport == "" {
		dport = portOrDefault(u)
	}
	if n, err := strconv.ParseUint(dport, 10, 16); err != nil || n == 0 {
		return "", "", fmt.Errorf("%w: %q: bad port %q", ErrInvalidTarget, where, dport)
	}
	// The Host field names the host without an IPv6 zone, which is local
	// to this machine (RFC 9110 §7.2, as net/http sends it).
	hostField := host
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		hostField = "[" + a.WithZone("").String() + "]"
	}
	if port != "" {
		hostField += ":" + port
	}
	target := u.RequestURI()
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f {
			return "", "", fmt.Errorf("%w: %q: bad request-target", ErrInvalidTarget, where)
		}
	}
	req = "GET " + target + " HTTP/1.1\r\n" +
		"Host: " + hostField + "\r\n" +
		"User-Agent: pir-healthcheck\r\n" +
		"Accept: */*\r\n" +
		"Connection: close\r\n\r\n"
	return net.JoinHostPort(host, dport), req, nil
}
