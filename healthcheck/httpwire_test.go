package healthcheck

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHeadEnd(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", -1},
		{"\r\n", 2},
		{"\n", 1},
		{"A\r\n\r\nbody", 5},
		{"A\nB\n\nbody", 5},
		{"A\r\nB\r\n", -1},
		{"A\r\n\rB\r\n", -1}, // a lone CR is not an empty line
	} {
		assert.Equal(t, tc.want, headEnd([]byte(tc.in)), "%q", tc.in)
	}
}

func TestReadHead(t *testing.T) {
	head := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
	t.Run("ByteByByte", func(t *testing.T) {
		buf, n, err := readHead(iotest.OneByteReader(strings.NewReader(head+"ok")), nil, 64)
		require.NoError(t, err)
		assert.Equal(t, head, string(buf[:n]))
		assert.LessOrEqual(t, len(buf), 64)
	})
	t.Run("WithBody", func(t *testing.T) {
		buf, n, err := readHead(strings.NewReader(head+"ok"), nil, 64)
		require.NoError(t, err)
		assert.Equal(t, "ok", string(buf[n:]), "the body's start stays in buf")
	})
	t.Run("DataWithEOF", func(t *testing.T) {
		buf, n, err := readHead(iotest.DataErrReader(strings.NewReader(head)), nil, 64)
		require.NoError(t, err)
		assert.Equal(t, len(head), n)
		assert.Equal(t, head, string(buf))
	})
	t.Run("TooLarge", func(t *testing.T) {
		buf, _, err := readHead(strings.NewReader(head), nil, 20)
		require.ErrorIs(t, err, errHeadTooLarge)
		assert.Len(t, buf, 20)
	})
	t.Run("EndsAtBound", func(t *testing.T) {
		_, n, err := readHead(strings.NewReader(head), nil, len(head))
		require.NoError(t, err)
		assert.Equal(t, len(head), n)
	})
	t.Run("EOF", func(t *testing.T) {
		_, _, err := readHead(strings.NewReader(""), nil, 64)
		require.ErrorIs(t, err, io.EOF)
		_, _, err = readHead(strings.NewReader("HTTP/1.1 200 OK\r\n"), nil, 64)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	})
	t.Run("Error", func(t *testing.T) {
		boom := errors.New("boom")
		_, _, err := readHead(iotest.ErrReader(boom), nil, 64)
		require.ErrorIs(t, err, boom)
	})
}

func TestParseResponseHead(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want responseHead
	}{
		{"HTTP/1.1 200 OK\r\n\r\n", responseHead{minor: 1, status: 200, reason: "OK", length: -1}},
		{"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 9\r\n\r\n", responseHead{status: 503, reason: "Service Unavailable", length: 9}},
		{"HTTP/1.1 200\r\n\r\n", responseHead{minor: 1, status: 200, length: -1}},
		{"HTTP/1.1 200 \r\n\r\n", responseHead{minor: 1, status: 200, length: -1}},
		{"HTTP/1.1 302 Found\nlocation:  /b \ncontent-length: 0\n\n", responseHead{minor: 1, status: 302, reason: "Found", location: "/b", length: 0}},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", responseHead{minor: 1, status: 200, reason: "OK", length: 5}},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", responseHead{minor: 1, status: 200, reason: "OK", length: -1}},
		{"HTTP/1.1 999 Odd\r\nX-Tab:\ta\tb\t\r\n\r\n", responseHead{minor: 1, status: 999, reason: "Odd", length: -1}},
	} {
		got, err := parseResponseHead([]byte(tc.in))
		require.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
	}
	for _, in := range []string{
		"",
		"\r\n",
		"HTTP/1.1\r\n\r\n",
		"HTTP/1.1 20\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 099 Low\r\n\r\n",
		"HTTP/1.1 20x OK\r\n\r\n",
		"HTTP/1.2 200 OK\r\n\r\n",
		"HTTP/2 200 OK\r\n\r\n",
		"http/1.1 200 OK\r\n\r\n",
		"HTTP/1.1  200 OK\r\n\r\n",
		"HTTP/1.1 200 O\x00K\r\n\r\n",
		"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
		"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nName : x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"HTTP/1.1 301 Moved\r\nLocation: /a\r\nLocation: /b\r\n\r\n",
	} {
		_, err := parseResponseHead([]byte(in))
		require.ErrorIs(t, err, errMalformedHead, "%q", in)
	}
}

func TestParseRequestHead(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want requestHead
	}{
		{"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", requestHead{"GET", "/healthz", 1}},
		{"HEAD /a?b=c HTTP/1.0\r\n\r\n", requestHead{"HEAD", "/a?b=c", 0}},
		{"GET http://x/a HTTP/1.1\nhost: x\n\n", requestHead{"GET", "http://x/a", 1}},
		{"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", requestHead{"OPTIONS", "*", 1}},
		{"M-SEARCH / HTTP/1.0\r\nHost: x\r\n\r\n", requestHead{"M-SEARCH", "/", 0}},
	} {
		got, err := parseRequestHead([]byte(tc.in))
		require.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
	}
	for _, in := range []string{
		"",
		"GET\r\n\r\n",
		"GET /\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n", // no Host
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", // two
		"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n",
		"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / x HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
		"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
		" / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\tfolded\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", // a TLS ClientHello
	} {
		_, err := parseRequestHead([]byte(in))
		require.ErrorIs(t, err, errMalformedHead, "%q", in)
	}
}

// TestHTTPReply: every reply the server writes parses as a response, and
// net/http reads it as the same.
func TestHTTPReply(t *testing.T) {
	now := time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC)
	assert.Equal(t, "HTTP/1.1 200 OK\r\nDate: Sat, 05 Dec 2026 20:00:00 GMT\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: 2\r\n"+
		"Connection: close\r\n\r\nok", string(httpReply(200, false, now)))
	for _, status := range []int{200, 400, 404, 405, 431, 503} {
		for _, head := range []bool{false, true} {
			b := httpReply(status, head, now)
			n := headEnd(b)
			require.Positive(t, n)
			h, err := parseResponseHead(b[:n])
			require.NoError(t, err)
			assert.Equal(t, status, h.status)
			assert.Equal(t, statusText(status), h.reason)
			method := "GET"
			if head {
				method = "HEAD"
				assert.Len(t, b, n, "a reply to HEAD has no body")
			} else {
				assert.Equal(t, int64(len(b)-n), h.length)
			}
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), &http.Request{Method: method})
			require.NoError(t, err)
			assert.Equal(t, status, resp.StatusCode)
			assert.True(t, resp.Close)
		}
	}
}

// Seeds for the fuzz tests: real heads from pir, net/http and curl, and
// known-bad ones.
var (
	responseSeeds = []string{
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Sat, 05 Dec 2026 20:00:00 GMT\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 27\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nok",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200\nContent-Length: 0\n\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
		"HTTP/2 200\r\n\r\n",
		"SSH-2.0-OpenSSH_9.6\r\n",
		"\x00",
	}
	requestSeeds = []string{
		"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: pir-healthcheck\r\nAccept: */*\r\nConnection: close\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: [::1]:8080\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n",
		"HEAD /healthz HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
		"GET http://x/healthz?a=b HTTP/1.0\n\n",
		"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
		"\x00",
	}
)

// FuzzParseResponseHead: readHead stays within its bound and finds the
// end headEnd finds; parseResponseHead never panics, returns only
// errMalformedHead with a short message, and what it accepts is in range,
// survives a round trip through a canonical head, and is what net/http
// reads when net/http accepts the head too.
func FuzzParseResponseHead(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s))
	}
	for _, status := range []int{200, 404, 405, 503} {
		f.Add(httpReply(status, false, time.Unix(0, 0)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkReadHead(t, b, maxResponseHead)
		if n := headEnd(b); n > 0 {
			b = b[:n]
		}
		h, err := parseResponseHead(b)
		if err != nil {
			require.ErrorIs(t, err, errMalformedHead)
			require.Less(t, len(err.Error()), 1024, "long error message")
			return
		}
		require.GreaterOrEqual(t, h.status, 100)
		require.LessOrEqual(t, h.status, 999)
		require.Contains(t, []int{0, 1}, h.minor)
		require.GreaterOrEqual(t, h.length, int64(-1))
		require.True(t, validFieldValue(h.reason) && validFieldValue(h.location))

		var c strings.Builder
		c.WriteString("HTTP/1." + strconv.Itoa(h.minor) + " " + strconv.Itoa(h.status))
		if h.reason != "" {
			c.WriteString(" " + h.reason)
		}
		c.WriteString("\r\n")
		if h.location != "" {
			c.WriteString("Location: " + h.location + "\r\n")
		}
		if h.length >= 0 {
			c.WriteString("Content-Length: " + strconv.FormatInt(h.length, 10) + "\r\n")
		}
		c.WriteString("\r\n")
		back, err := parseResponseHead([]byte(c.String()))
		require.NoError(t, err, "%q", c.String())
		require.Equal(t, h, back)

		if headEnd(b) == len(b) {
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
			if err == nil {
				require.Equal(t, h.status, resp.StatusCode)
				require.Equal(t, h.location, resp.Header.Get("Location"))
				_ = resp.Body.Close()
			}
		}
	})
}

// FuzzParseRequestHead: readHead stays within its bound; parseRequestHead
// never panics, returns only errMalformedHead with a short message, and
// what it accepts survives a round trip, agrees with net/http when
// net/http accepts the head too, and gets a reply that parses.
func FuzzParseRequestHead(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	_, req, err := httpRequest(&url.URL{Scheme: "http", Host: "[fe80::1%eth0]:80", Path: "/healthz", RawQuery: "a=1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(req))
	s := NewHTTPServer(ServerConfig{})
	s.cfg = s.cfg.withDefaults()
	s.log = s.cfg.Logger
	f.Fuzz(func(t *testing.T, b []byte) {
		checkReadHead(t, b, maxRequestHead)
		if n := headEnd(b); n > 0 {
			b = b[:n]
		}
		status, head := s.answer(b)
		reply := httpReply(status, head, time.Unix(0, 0))
		n := headEnd(reply)
		require.Positive(t, n)
		rh, err := parseResponseHead(reply[:n])
		require.NoError(t, err)
		require.Equal(t, status, rh.status)

		r, err := parseRequestHead(b)
		if err != nil {
			require.ErrorIs(t, err, errMalformedHead)
			require.Less(t, len(err.Error()), 1024, "long error message")
			require.Equal(t, 400, status)
			return
		}
		require.True(t, isToken([]byte(r.method)))
		require.NotEmpty(t, r.target)
		require.NotContains(t, r.target, " ")
		canon := r.method + " " + r.target + " HTTP/1." + strconv.Itoa(r.minor) + "\r\n"
		if r.minor == 1 {
			canon += "Host: x\r\n"
		}
		back, err := parseRequestHead([]byte(canon + "\r\n"))
		require.NoError(t, err)
		require.Equal(t, r, back)

		if headEnd(b) == len(b) {
			hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
			if err == nil {
				require.Equal(t, r.method, hr.Method)
				require.Equal(t, r.target, hr.RequestURI)
			}
		}
	})
}

// checkReadHead reads b through readHead with bound max, one byte at a
// time, and checks what it returns against headEnd.
func checkReadHead(t *testing.T, b []byte, max int) {
	buf, n, err := readHead(iotest.OneByteReader(bytes.NewReader(b)), nil, max)
	require.LessOrEqual(t, len(buf), max)
	require.True(t, bytes.HasPrefix(b, buf))
	want := headEnd(b)
	switch {
	case want >= 0 && want <= max:
		require.NoError(t, err)
		require.Equal(t, want, n)
	case len(b) >= max:
		require.ErrorIs(t, err, errHeadTooLarge)
	case len(b) == 0:
		require.ErrorIs(t, err, io.EOF)
	default:
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	}
}
