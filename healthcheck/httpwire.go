package healthcheck

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// The HTTP/1.x that the HTTPProber and HTTPServer speak, written here
// rather than taken from net/http: net/http and crypto/tls cost every
// program that links them about 1.5 MiB of resident memory, and a member
// links this package whether or not it ever probes over HTTP. Only what a
// health probe needs is here: a request and a response head, each read
// within a byte bound and parsed by a pure function over bytes.

// Bounds on what is read of a peer's HTTP head.
const (
	maxResponseHead = 16 << 10 // every response head a probe reads, interim ones included
	maxRequestHead  = 8 << 10  // the request head the HTTPServer reads
)

var (
	// errHeadTooLarge reports a head that did not end within its bound.
	errHeadTooLarge = errors.New("head too large")
	// errMalformedHead wraps every error of parseResponseHead and
	// parseRequestHead.
	errMalformedHead = errors.New("malformed HTTP head")
)

// headEnd returns the length of the head at the start of b, through the
// empty line that ends it, or -1 if b holds no empty line. Lines end with
// CRLF, or a bare LF, which RFC 9112 §2.2 lets a recipient accept.
func headEnd(b []byte) int {
	start := 0
	for {
		i := bytes.IndexByte(b[start:], '\n')
		if i < 0 {
			return -1
		}
		line := b[start : start+i]
		start += i + 1
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return start
		}
	}
}

// readHead reads from r, appending to buf, until buf holds a whole head,
// and returns buf and the head's length (headEnd). Bytes past the head
// (the start of a body) stay in buf. buf grows as the head does, by
// doubling from headStart bytes, to at most limit bytes: a probe's or a
// request's head is a few hundred bytes, and each probe would otherwise
// make garbage of the whole bound. It fails with errHeadTooLarge when
// limit bytes hold no end of head, io.EOF when r ends before its first
// byte, io.ErrUnexpectedEOF when r ends within the head, and r's error
// otherwise. It never reads past limit bytes of buf.
func readHead(r io.Reader, buf []byte, limit int) ([]byte, int, error) {
	for {
		if n := headEnd(buf); n >= 0 {
			return buf, n, nil
		}
		if len(buf) >= limit {
			return buf, 0, fmt.Errorf("%w: no end within %d bytes", errHeadTooLarge, limit)
		}
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(max(cap(buf), headStart), limit-len(buf)))
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), limit)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if n > 0 && headEnd(buf) >= 0 {
				continue
			}
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return buf, 0, err
		}
	}
}

// headStart is the room readHead first makes for a head.
const headStart = 512

// responseHead is what a probe needs of an HTTP response head.
type responseHead struct {
	minor    int    // 0 for HTTP/1.0, 1 for HTTP/1.1
	status   int    // 100 to 999
	reason   string // possibly empty
	location string // the Location field, or empty
	// length is the Content-Length, or -1 when the body runs until the
	// connection closes: no Content-Length, or a Transfer-Encoding, which
	// overrides it (RFC 9112 §6.3).
	length int64
}

// parseResponseHead parses head, a response head as readHead returns it
// (the status line and the header fields through the empty line). Every
// error wraps errMalformedHead. It accepts HTTP/1.0 and HTTP/1.1 only.
func parseResponseHead(head []byte) (responseHead, error) {
	h := responseHead{length: -1}
	line, rest := nextLine(head)
	// HTTP/1.x SP 3DIGIT SP reason (RFC 9112 §4; the SP before an empty
	// reason is often left out, and accepted).
	if len(line) < 12 || (len(line) > 12 && line[12] != ' ') || line[8] != ' ' {
		return h, malformed("status line %q", line)
	}
	minor, ok := httpVersion(line[:8])
	if !ok {
		return h, malformed("version %q", line[:8])
	}
	h.minor = minor
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return h, malformed("status %q", line[9:12])
		}
		h.status = h.status*10 + int(c-'0')
	}
	if h.status < 100 {
		return h, malformed("status %q", line[9:12])
	}
	if len(line) > 12 {
		h.reason = string(line[13:])
		if !validFieldValue(h.reason) {
			return h, malformed("reason %q", h.reason)
		}
	}
	var length string
	var seenLength, chunked bool
	err := eachField(rest, func(name, value string) error {
		switch {
		case strings.EqualFold(name, "Location"):
			if h.location != "" {
				return malformed("two Location fields")
			}
			h.location = value
		case strings.EqualFold(name, "Content-Length"):
			if seenLength && value != length {
				return malformed("Content-Length %q and %q", length, value)
			}
			seenLength, length = true, value
		case strings.EqualFold(name, "Transfer-Encoding"):
			chunked = true
		}
		return nil
	})
	if err != nil {
		return h, err
	}
	if seenLength && !chunked {
		n, err := strconv.ParseInt(length, 10, 64)
		if err != nil || n < 0 || length[0] == '+' {
			return h, malformed("Content-Length %q", length)
		}
		h.length = n
	}
	return h, nil
}

// requestHead is what the HTTPServer needs of a request head.
type requestHead struct {
	method string
	target string // the request-target as sent
	minor  int    // 0 for HTTP/1.0, 1 for HTTP/1.1
}

// parseRequestHead parses head, a request head as readHead returns it.
// Every error wraps errMalformedHead. It accepts HTTP/1.0 and HTTP/1.1
// only, a method that is a token, a request-target of visible ASCII, and
// (RFC 9112 §3.2) requires exactly one Host field of an HTTP/1.1 request.
func parseRequestHead(head []byte) (requestHead, error) {
	var r requestHead
	line, rest := nextLine(head)
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 == sp1 {
		return r, malformed("request line %q", line)
	}
	method, target, version := line[:sp1], line[sp1+1:sp2], line[sp2+1:]
	if !isToken(method) {
		return r, malformed("method %q", method)
	}
	if len(target) == 0 {
		return r, malformed("empty request-target")
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f {
			return r, malformed("request-target %q", target)
		}
	}
	minor, ok := httpVersion(version)
	if !ok {
		return r, malformed("version %q", version)
	}
	r.method, r.target, r.minor = string(method), string(target), minor
	hosts := 0
	err := eachField(rest, func(name, _ string) error {
		if strings.EqualFold(name, "Host") {
			hosts++
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	if hosts > 1 || (hosts == 0 && minor == 1) {
		return r, malformed("%d Host fields", hosts)
	}
	return r, nil
}

// nextLine splits b at its first line end (LF, with the CR before it
// dropped) and returns the line and what follows.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// eachField calls f with the name and value of each header field in b,
// up to the empty line that ends the head, the value's surrounding spaces
// and tabs trimmed. It rejects a line with no colon, a name that is not a
// token (space before the colon included: RFC 9112 §5.1), obsolete line
// folding, and a value with a control character other than tab.
func eachField(b []byte, f func(name, value string) error) error {
	for {
		var line []byte
		line, b = nextLine(b)
		if len(line) == 0 {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return malformed("folded header line %q", line)
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return malformed("header line %q", line)
		}
		value := string(bytes.Trim(line[colon+1:], " \t"))
		if !validFieldValue(value) {
			return malformed("header value %q", value)
		}
		if err := f(string(line[:colon]), value); err != nil {
			return err
		}
	}
}

// httpVersion parses "HTTP/1.0" or "HTTP/1.1" and returns the minor
// version.
func httpVersion(b []byte) (int, bool) {
	switch string(b) {
	case "HTTP/1.0":
		return 0, true
	case "HTTP/1.1":
		return 1, true
	}
	return 0, false
}

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validFieldValue reports whether s holds no control character but tab:
// no CR, LF or NUL (RFC 9110 §5.5).
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// malformed returns an error wrapping errMalformedHead, quoting at most
// 64 bytes of each []byte or string argument.
func malformed(format string, args ...any) error {
	for i, a := range args {
		switch v := a.(type) {
		case []byte:
			args[i] = clip(string(v))
		case string:
			args[i] = clip(v)
		}
	}
	return fmt.Errorf("%w: "+format, append([]any{errMalformedHead}, args...)...)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// statusText is the reason phrase the HTTPServer sends with each status.
func statusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 431:
		return "Request Header Fields Too Large"
	case 503:
		return "Service Unavailable"
	}
	return ""
}
