package healthcheck

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failingListener fails its first fails Accepts with EMFILE (out of file
// descriptors), then accepts for real; each Accept call is sent on calls.
type failingListener struct {
	net.Listener
	fails int
	n     int // Accept calls so far: the accept loop's alone
	calls chan int
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.n++
	l.calls <- l.n
	if l.n <= l.fails {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// A TCPServer whose Accept fails reads failing in Check, with the cause,
// from the first failure until an Accept succeeds again.
func TestCheckAcceptFailing(t *testing.T) {
	s := NewTCPServer(ServerConfig{})
	ln := &failingListener{fails: 3, calls: make(chan int, 8)}
	require.NoError(t, s.start("127.0.0.1:0", func(addr string) (net.Addr, func(), error) {
		inner, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		ln.Listener, s.ln = inner, inner
		return inner.Addr(), func() { s.acceptLoop(ln, s.serve) }, nil
	}))
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	next := func(want int) {
		t.Helper()
		select {
		case n := <-ln.calls:
			require.Equal(t, want, n)
		case <-time.After(10 * time.Second):
			require.FailNow(t, "no Accept call", "want call %d", want)
		}
	}
	next(1)
	next(2) // the first failure is noted before the loop waits and calls again
	require.ErrorIs(t, s.Check(), syscall.EMFILE)
	next(3)
	next(4) // the fourth Accept is a real one: it waits for a connection
	require.ErrorIs(t, s.Check(), syscall.EMFILE, "no Accept has succeeded since")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, NewTCPProber(TCPConfig{}).Probe(ctx, s.URI()))
	require.NoError(t, s.Check(), "an Accept succeeded")
}

// TestHTTPServerMaxConns holds MaxConns connections open and checks that
// the server resets every further one at once, until one of them closes.
func TestHTTPServerMaxConns(t *testing.T) {
	const max = 2
	s := NewHTTPServer(ServerConfig{ReadTimeout: time.Minute, FirstByteTimeout: -1, MaxConns: max})
	events := make(chan bool, 16) // a connection's goroutine started (true) or ended
	s.connEvent = func(_ net.Conn, open bool) { events <- open }
	require.NoError(t, s.Start("127.0.0.1:0"))
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	dial := func() (net.Conn, error) {
		c, err := net.Dial("tcp", s.Addr().String())
		if err == nil {
			t.Cleanup(func() { _ = c.Close() })
			err = c.SetDeadline(time.Now().Add(10 * time.Second))
		}
		return c, err
	}
	waitFor := func(want bool) {
		t.Helper()
		select {
		case open := <-events:
			require.Equal(t, want, open)
		case <-time.After(10 * time.Second):
			require.FailNow(t, "no connection event", "want open=%v", want)
		}
	}

	held := make([]net.Conn, max)
	for i := range held {
		var err error
		held[i], err = dial()
		require.NoError(t, err)
		waitFor(true)
	}
	// The extra connection is reset: at once, or at the first read.
	if extra, err := dial(); err == nil {
		_, err = io.WriteString(extra, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		if err == nil {
			_, err = extra.Read(make([]byte, 1))
		}
		require.Error(t, err)
	}
	assert.Equal(t, uint64(1), s.Stats().Refused)

	require.NoError(t, held[0].Close())
	waitFor(false)
	c, err := dial()
	require.NoError(t, err)
	waitFor(true)
	_, err = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestHTTPProberConfig: the defaults, and https only with a DialTLS.
func TestHTTPProberConfig(t *testing.T) {
	p := NewHTTPProber(HTTPConfig{})
	assert.Equal(t, DefaultTimeout, p.timeout)
	assert.Nil(t, p.dialTLS)
	assert.False(t, p.Supports("https"))
	p = NewHTTPProber(HTTPConfig{Timeout: time.Second, DialTLS: (&net.Dialer{}).DialContext})
	assert.Equal(t, time.Second, p.timeout)
	assert.True(t, p.Supports("HTTPS"))
}

func TestSameHost(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"http://h:80/a", "http://h/b", true},
		{"http://H:8080/a", "http://h:8080/b", true},
		{"https://h/a", "https://h:443/b", true},
		{"http://h:8080/a", "http://h:8081/a", false},
		{"http://h/a", "http://g/a", false},
		{"http://[::1]:8/a", "http://[::1]:8/b", true},
	} {
		a, err := url.Parse(tc.a)
		require.NoError(t, err)
		b, err := url.Parse(tc.b)
		require.NoError(t, err)
		assert.Equal(t, tc.same, sameHost(a, b), "%s vs %s", tc.a, tc.b)
	}
}

func TestURIFor(t *testing.T) {
	lookup := func(name string) (int, bool) { return 7, name == "a/b" }
	for _, tc := range []struct {
		ap   string
		want string
	}{
		{"127.0.0.1:7", "tcp://127.0.0.1:7/p"},
		{"[::ffff:127.0.0.1]:7", "tcp://127.0.0.1:7/p"},
		{"0.0.0.0:7", "tcp://0.0.0.0:7/p"},
		{"[::]:7", "tcp://[::]:7/p"},
		{"[::1]:7", "tcp://[::1]:7/p"},
		{"[fe80::1%eth0]:7", "tcp://[fe80::1%25eth0]:7/p"},
		{"[fe80::1%br-1.2_x~]:7", "tcp://[fe80::1%25br-1.2_x~]:7/p"},
		{"[fe80::1%12]:7", "tcp://[fe80::1%2512]:7/p"},
		{"[fe80::1%a/b]:7", "tcp://[fe80::1%257]:7/p"}, // unsafe zone, by index
		{"[fe80::1%a@b]:7", "tcp://[fe80::1]:7/p"},     // unsafe zone, no index
	} {
		t.Run(tc.ap, func(t *testing.T) {
			u := uriFor("tcp", netip.MustParseAddrPort(tc.ap), "/p", lookup)
			assert.Equal(t, tc.want, u.String())
			back, err := url.Parse(u.String())
			require.NoError(t, err)
			assert.Equal(t, u, back)
		})
	}
}

func TestTimeoutOrDefault(t *testing.T) {
	assert.Equal(t, DefaultTimeout, timeoutOrDefault(0))
	assert.Equal(t, DefaultTimeout, timeoutOrDefault(-time.Second))
	assert.Equal(t, time.Second, timeoutOrDefault(time.Second))
	assert.Equal(t, DefaultTimeout, NewTCPProber(TCPConfig{}).timeout)
	assert.Equal(t, DefaultTimeout, NewUDPProber(UDPConfig{}).timeout)
}

func TestDeadlineFor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	dl, _ := ctx.Deadline()
	assert.Equal(t, dl, deadlineFor(ctx, time.Hour), "the context's sooner deadline wins")
	assert.True(t, deadlineFor(context.Background(), time.Hour).After(time.Now().Add(59*time.Minute)))
}

// FuzzHostPort feeds hostPort the URIs peers announce: it must never
// panic, and what it accepts must be a dialable host:port with the URI's
// host and a port in 1-65535.
func FuzzHostPort(f *testing.F) {
	for _, s := range []string{
		"tcp://127.0.0.1:7", "udp://[::1]:65535", "tcp://[fe80::1%25eth0]:7",
		"tcp://host.example:80", "tcp://127.0.0.1", "tcp://:7", "tcp:127.0.0.1:7",
		"tcp://127.0.0.1:0", "tcp://[::1]:65536", "tcp://u:p@h:1/x?y#z", "", "tcp://[::1%25]:1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		addr, err := hostPort(u)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidTarget)
			return
		}
		host, port, err := net.SplitHostPort(addr)
		require.NoError(t, err)
		require.Equal(t, u.Hostname(), host)
		n, err := strconv.ParseUint(port, 10, 16)
		require.NoError(t, err)
		require.NotZero(t, n)
	})
}

// FuzzURIFor checks that every address a server can be bound to gives a
// URI that survives url.Parse(u.String()) and names the same address and
// port, keeping every zone made of unreserved characters.
func FuzzURIFor(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1}, "", uint16(7))
	f.Add(netip.MustParseAddr("fe80::1").AsSlice(), "eth0", uint16(1))
	f.Add(netip.MustParseAddr("fe80::1").AsSlice(), "a/b", uint16(65535))
	f.Add(netip.MustParseAddr("::ffff:10.0.0.1").AsSlice(), "x", uint16(0))
	f.Add(netip.MustParseAddr("fe80::1").AsSlice(), "%25]é", uint16(80))
	f.Fuzz(func(t *testing.T, raw []byte, zone string, port uint16) {
		a, ok := netip.AddrFromSlice(raw)
		if !ok {
			return
		}
		if a.Is6() && !a.Is4In6() {
			a = a.WithZone(zone)
		}
		lookup := func(name string) (int, bool) { return len(name), len(name)%2 == 0 }
		u := uriFor("tcp", netip.AddrPortFrom(a, port), "/healthz", lookup)
		back, err := url.Parse(u.String())
		require.NoError(t, err, "URI %q", u)
		require.Equal(t, u.Host, back.Host)
		got, err := netip.ParseAddr(back.Hostname())
		require.NoError(t, err)
		require.Equal(t, a.Unmap().WithZone(""), got.WithZone(""))
		if safeZone(a.Zone()) {
			require.Equal(t, a.Unmap().Zone(), got.Zone())
		}
		require.Equal(t, strconv.Itoa(int(port)), back.Port())
	})
}

// FuzzCheckReply feeds the reply check arbitrary payloads: exactly 0x00 is
// healthy, anything else unhealthy.
func FuzzCheckReply(f *testing.F) {
	for _, b := range [][]byte{{0x00}, {0x01}, {}, {0x00, 0x00}, {0xff}} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := checkReply("peer", b)
		want := len(b) == 1 && b[0] == 0x00
		require.Equal(t, want, err == nil, "reply % x: %v", b, err)
		require.Equal(t, want, isProbe(b))
		if err != nil {
			require.ErrorIs(t, err, ErrUnhealthy)
		}
	})
}
