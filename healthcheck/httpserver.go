package healthcheck

import (
	"errors"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// HTTPServer answers the HTTP probe on ServerConfig.Path, for HTTPProber
// and any HTTP client: while healthy it answers GET and HEAD with 200
// "ok", while unhealthy with 503 "unhealthy" (HEAD without the body);
// other paths (the query aside) get 404, other methods 405, a malformed
// request 400, a request head over 8 KiB 431. Every reply is
// text/plain, "Cache-Control: no-store", with a Content-Length.
//
// One request per connection: the server reads one request head, answers
// it with "Connection: close" and closes the connection. It speaks
// HTTP/1.0 and HTTP/1.1 without net/http (the package doc says why), and
// reads no request body. An application that has an HTTP server of its
// own serves the same answers there with healthcheck/httphealth's
// Handler(s.Healthy) instead.
//
// It counts its connections as the TCPServer does (see ServerConfig): a
// connection it refuses is reset as soon as it is accepted, and so is one
// that sends no byte of its request within FirstByteTimeout, or not the
// whole head within ReadTimeout.
//
// Its methods are safe for concurrent use. Close stops it for good.
type HTTPServer struct {
	serverCore
	ln net.Listener

	// connEvent, when set (by tests), is called as a connection's
	// goroutine starts (open true) and as it ends.
	connEvent func(c net.Conn, open bool)
}

// NewHTTPServer returns a healthy HTTPServer configured by cfg. Start makes
// it listen.
func NewHTTPServer(cfg ServerConfig) *HTTPServer {
	s := &HTTPServer{}
	s.prepare("http", cfg)
	return s
}

// Start listens on addr, such as "127.0.0.1:0" or "[::1]:0", and serves in
// the background until Close. It fails if the config is invalid, the
// address cannot be bound, or the server was already started or closed.
func (s *HTTPServer) Start(addr string) error { return s.start(addr, s.bind) }

// bind is what Start hands to serverCore.start.
func (s *HTTPServer) bind(addr string) (net.Addr, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	s.ln = ln
	s.path = s.cfg.Path
	return ln.Addr(), func() { s.acceptLoop(ln, s.serve) }, nil
}

// Stats returns a snapshot of the server's connection counters.
func (s *HTTPServer) Stats() ServerStats { return s.stats() }

// Close stops the listener, closes every open connection and waits for
// every goroutine the server started. It may be called before Start, and
// more than once; every call returns once the server has stopped.
func (s *HTTPServer) Close() error {
	return s.shutdown(func() error {
		err := s.ln.Close()
		s.closeAll()
		return err
	})
}

// After its reply the server reads and drops what the client sends, up to
// maxLinger bytes and for lingerTimeout at most, until the client closes
// its side: closing a socket with unread bytes sends a reset, which would
// destroy a reply the client has not read yet when it sent more than the
// server read (a body, a second request, an oversize head).
const (
	lingerTimeout = 500 * time.Millisecond
	maxLinger     = 64 << 10
)

// serve answers the one request of c and closes it.
func (s *HTTPServer) serve(c *conn) {
	if s.connEvent != nil {
		s.connEvent(c.Conn, true)
		defer s.connEvent(c.Conn, false)
	}
	abort := true // reset, rather than close, a connection that sent no request
	defer func() {
		if abort {
			s.release(c)
			closeWithReset(c.Conn)
			return
		}
		_ = c.Close()
	}()
	end := time.Now().Add(s.cfg.ReadTimeout)
	if err := c.SetDeadline(end); err != nil {
		return
	}
	buf, n, err := readHead(c, nil, maxRequestHead)
	var status int
	var head bool
	switch {
	case errors.Is(err, errHeadTooLarge):
		status = 431
	case err != nil:
		s.log.Debug("request not received", "remote", c.RemoteAddr(), "error", err)
		return
	default:
		status, head = s.answer(buf[:n])
	}
	abort = false
	if _, err := c.Write(httpReply(status, head, time.Now())); err != nil {
		s.log.Debug("reply not sent", "remote", c.RemoteAddr(), "error", err)
		return
	}
	// Close gracefully: FIN, then read until the client closes, briefly
	// and within ReadTimeout still.
	if linger := time.Now().Add(lingerTimeout); linger.Before(end) {
		end = linger
	}
	if c.CloseWrite() == nil && c.SetReadDeadline(end) == nil {
		_, _ = io.CopyN(io.Discard, c, maxLinger)
	}
}

// answer returns the status that answers the request whose head is b, and
// whether the request was a HEAD (whose reply has no body).
func (s *HTTPServer) answer(b []byte) (status int, head bool) {
	r, err := parseRequestHead(b)
	if err != nil {
		s.log.Debug("bad request", "error", err)
		return 400, false
	}
	head = r.method == "HEAD"
	u, err := url.ParseRequestURI(r.target)
	switch {
	case err != nil:
		return 400, head
	case u.Path != s.cfg.Path:
		return 404, head
	case r.method != "GET" && !head:
		return 405, false
	case !s.healthy.Load():
		return 503, head
	}
	return 200, head
}

// httpReply returns the whole reply with status, without its body for a
// HEAD, dated now.
func httpReply(status int, head bool, now time.Time) []byte {
	var body string
	switch status {
	case 200:
		body = "ok"
	case 503:
		body = "unhealthy"
	default:
		body = statusText(status)
	}
	b := make([]byte, 0, 256)
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, statusText(status)...)
	b = append(b, "\r\nDate: "...)
	b = now.UTC().AppendFormat(b, "Mon, 02 Jan 2006 15:04:05 GMT")
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n"...)
	if status == 405 {
		b = append(b, "Allow: GET, HEAD\r\n"...)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nConnection: close\r\n\r\n"...)
	if !head {
		b = append(b, body...)
	}
	return b
}
