package multicast

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport"
)

// Every test that opens a socket runs inside the private namespace netlab
// makes, where lo is the only interface: multicast never reaches a real
// network.
func TestMain(m *testing.M) { netlab.Main(m) }

// timeout bounds every wait for a datagram.
const timeout = 5 * time.Second

// leakCheck registers, first, a cleanup that runs last: after every
// transport the test made is closed, none of their goroutines may remain.
func leakCheck(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// freePort returns a UDP port nothing in the namespace uses, for a group of
// the test's own.
func freePort(t *testing.T, network string) uint16 {
	t.Helper()
	c, err := net.ListenPacket(network, ":0")
	require.NoError(t, err)
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
}

func testLogger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Trace, Output: tWriter{t}})
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// open makes a Conn and closes it when the test ends.
func open(t *testing.T, cfg Config) *Conn {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	c, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rx is one outcome of Receive.
type rx struct {
	p    transport.Packet
	data []byte
	err  error
}

// pump receives on tr in a goroutine until tr is closed, and delivers what
// it receives. The cleanup closes tr and waits for the goroutine.
func pump(t *testing.T, tr transport.Transport) <-chan rx {
	t.Helper()
	ch := make(chan rx, 256)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1<<16)
		for {
			p, err := tr.Receive(buf)
			if errors.Is(err, transport.ErrClosed) {
				return
			}
			r := rx{p: p, err: err}
			if err == nil {
				r.data = bytes.Clone(buf[:p.N])
			}
			select {
			case ch <- r:
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		_ = tr.Close()
		wg.Wait()
	})
	return ch
}

// expect waits for the next datagram on ch and checks it carries want.
func expect(t *testing.T, ch <-chan rx, want string) transport.Packet {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		require.NoError(t, r.err)
		require.Equal(t, want, string(r.data), "from %v", r.p.Src)
		require.Equal(t, len(want), r.p.N)
		return r.p
	case <-timer.C:
		t.Fatalf("%q not received within %v", want, timeout)
		return transport.Packet{}
	}
}

// expectSet waits until every datagram in want has arrived on ch, in any
// order, and fails if any other arrives first.
func expectSet(t *testing.T, ch <-chan rx, want ...string) map[string]transport.Packet {
	t.Helper()
	return expectSetSkipping(t, ch, func(string) bool { return false }, want...)
}

// expectSetSkipping is expectSet ignoring the datagrams skip reports.
func expectSetSkipping(t *testing.T, ch <-chan rx, skip func(string) bool, want ...string) map[string]transport.Packet {
	t.Helper()
	got := make(map[string]transport.Packet)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for len(got) < len(want) {
		select {
		case r := <-ch:
			require.NoError(t, r.err)
			d := string(r.data)
			if skip(d) {
				continue
			}
			_, dup := got[d]
			require.True(t, slices.Contains(want, d) && !dup, "received %q from %v, want %q", d, r.p.Src, want)
			got[d] = r.p
		case <-timer.C:
			t.Fatalf("received %d of %q within %v", len(got), want, timeout)
		}
	}
	return got
}

func loIndex(t *testing.T) int {
	t.Helper()
	lo, err := net.InterfaceByName(netlab.Loopback)
	require.NoError(t, err)
	return lo.Index
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		network string
		group   string // empty: the default
		src     netip.Addr
	}{
		{"udp4 default group", "udp4", "", netlab.LoopbackV4},
		{"udp4 admin scoped", "udp4", "239.255.112.105", netlab.LoopbackV4},
		{"udp6 default group", "udp6", "", netlab.LoopbackV6},
		{"udp6 site-local", "udp6", "ff05::8070:6972", netlab.LoopbackV6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.network == "udp6" {
				netlab.RequireIPv6(t)
			} else {
				netlab.Require(t)
			}
			leakCheck(t)
			cfg := Config{Network: tc.network}
			if tc.group != "" {
				cfg.Group = netip.AddrPortFrom(netip.MustParseAddr(tc.group), freePort(t, tc.network))
			}
			a, b := open(t, cfg), open(t, cfg)
			require.Equal(t, a.Group(), b.Group(), "two Conns share the group port")
			ra, rb := pump(t, a), pump(t, b)

			wantLinks := []transport.Link{{Index: loIndex(t), Name: netlab.Loopback, Addr: tc.src}}
			assert.Equal(t, wantLinks, a.Links(), "lo, the only interface, is used")

			require.NoError(t, a.Send([]byte("one from a")))
			p := expect(t, rb, "one from a")
			assert.Equal(t, netip.AddrPortFrom(tc.src, a.LocalAddr().Port()), p.Src, "source: lo's address, a's sending port")
			assert.Equal(t, loIndex(t), p.IfIndex)
			expect(t, ra, "one from a") // looped back to the sender too

			require.NoError(t, b.Send([]byte("two from b")))
			// Exactly once: the next datagram is the second, not a copy.
			expect(t, ra, "two from b")
			expect(t, rb, "two from b")
		})
	}
}

func TestSendToReachesOnlyTheSender(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			if network == "udp6" {
				netlab.RequireIPv6(t)
			}
			netlab.Require(t)
			leakCheck(t)
			cfg := Config{Network: network, Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, network))}
			a, b, c := open(t, cfg), open(t, cfg), open(t, cfg)
			ra, rb, rc := pump(t, a), pump(t, b), pump(t, c)

			require.NoError(t, a.Send([]byte("hello")))
			src := expect(t, rb, "hello").Src
			expect(t, rc, "hello")
			expect(t, ra, "hello")

			require.NoError(t, b.SendTo([]byte("reply"), src))
			require.NoError(t, b.Send([]byte("marker")))
			// The unicast and the multicast arrive on different sockets,
			// so in either order.
			p := expectSet(t, ra, "reply", "marker")
			assert.Equal(t, netip.AddrPortFrom(src.Addr(), b.LocalAddr().Port()), p["reply"].Src)
			assert.Equal(t, p["marker"].Src, p["reply"].Src, "unicast and multicast come from one socket")
			// c and b get the marker, never the reply.
			expectSet(t, rc, "marker")
			expectSet(t, rb, "marker")
		})
	}
}

func TestSendToWrongFamily(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	c := open(t, Config{Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp4"))})
	assert.Error(t, c.SendTo([]byte("x"), netip.MustParseAddrPort("[::1]:9")))
	assert.Error(t, c.SendTo([]byte("x"), netip.AddrPort{}))
	assert.Error(t, c.SendTo([]byte("x"), netip.MustParseAddrPort("127.0.0.1:0")))
	// An IPv4-mapped address is IPv4.
	assert.NoError(t, c.SendTo([]byte("x"), netip.MustParseAddrPort("[::ffff:127.0.0.1]:9")))
}

func TestTruncated(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	cfg := Config{Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp4")), DisableLoopback: false}
	a, b := open(t, cfg), open(t, cfg)

	long := bytes.Repeat([]byte("x"), 100)
	require.NoError(t, a.Send(long))
	require.NoError(t, a.Send([]byte("short")))

	buf := make([]byte, 99)
	_, err := b.Receive(buf)
	require.ErrorIs(t, err, transport.ErrTruncated)
	assert.Equal(t, make([]byte, 99), buf, "nothing copied into the buffer")

	p, err := b.Receive(buf)
	require.NoError(t, err, "receiving goes on after a truncated datagram")
	assert.Equal(t, "short", string(buf[:p.N]))

	// Exactly the buffer's size fits.
	require.NoError(t, a.Send(long[:99]))
	p, err = b.Receive(buf)
	require.NoError(t, err)
	assert.Equal(t, 99, p.N)
}

func TestTooLarge(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	c := open(t, Config{Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp4")), MaxDatagram: 100})
	l := c.Links()
	require.Len(t, l, 1)
	dst := netip.AddrPortFrom(netlab.LoopbackV4, 9)

	big := make([]byte, 101)
	assert.ErrorIs(t, c.Send(big), transport.ErrTooLarge)
	assert.ErrorIs(t, c.SendTo(big, dst), transport.ErrTooLarge)
	assert.ErrorIs(t, c.SendVia(big, l[0]), transport.ErrTooLarge)
	assert.NoError(t, c.Send(big[:100]))
	assert.NoError(t, c.SendTo(big[:100], dst))
	assert.NoError(t, c.SendVia(big[:100], l[0]))

	d := open(t, Config{Group: c.Group()})
	assert.ErrorIs(t, d.Send(make([]byte, transport.MaxDatagram+1)), transport.ErrTooLarge, "the default limit")
	assert.NoError(t, d.Send(make([]byte, transport.MaxDatagram)))
}

func TestCloseUnblocksReceive(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	c, err := New(Config{Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp4"))})
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		_, err := c.Receive(make([]byte, 10))
		done <- err
	}()
	require.NoError(t, c.Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, transport.ErrClosed)
		require.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(timeout):
		t.Fatal("Receive still blocked after Close")
	}
	require.NoError(t, c.Close(), "Close is idempotent")
	assert.ErrorIs(t, c.Send([]byte("x")), transport.ErrClosed)
	assert.ErrorIs(t, c.SendTo([]byte("x"), netip.AddrPortFrom(netlab.LoopbackV4, 9)), transport.ErrClosed)
	assert.ErrorIs(t, c.SendVia([]byte("x"), transport.Link{Index: loIndex(t)}), transport.ErrClosed)
	assert.ErrorIs(t, c.Rescan(), transport.ErrClosed)
	_, err = c.Receive(make([]byte, 10))
	assert.ErrorIs(t, err, transport.ErrClosed)
}

// TestOtherGroupOnSamePort: a datagram to another group on the group port
// is not received, although a socket on the host joined that group.
func TestOtherGroupOnSamePort(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t, "udp4")
	mine := netip.AddrPortFrom(netip.MustParseAddr("239.255.0.1"), port)
	other := netip.AddrPortFrom(netip.MustParseAddr("239.255.0.2"), port)
	a := open(t, Config{Group: mine})
	b := open(t, Config{Group: other})
	ra, rb := pump(t, a), pump(t, b)

	// One plain socket sends both, the other group first.
	s, err := net.ListenUDP("udp4", &net.UDPAddr{IP: netlab.LoopbackV4.AsSlice()})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.WriteToUDPAddrPort([]byte("to the other group"), other)
	require.NoError(t, err)
	_, err = s.WriteToUDPAddrPort([]byte("to my group"), mine)
	require.NoError(t, err)

	expect(t, rb, "to the other group")
	expect(t, ra, "to my group") // had a received the other, it would have come first
	if runtime.GOOS == "linux" {
		// IP_MULTICAST_ALL off: the kernel does not even deliver it.
		assert.Zero(t, a.Stats().Filtered)
	}
}

func TestNoInterface(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	c := open(t, Config{Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp4")), Interfaces: []string{"nosuch0"}})
	assert.Empty(t, c.Links())
	assert.ErrorIs(t, c.Send([]byte("x")), ErrNoInterface)
	assert.ErrorIs(t, c.SendVia([]byte("x"), transport.Link{Index: loIndex(t), Name: netlab.Loopback}), ErrNoInterface,
		"lo exists but is not in use")
	// Unicast needs no link.
	assert.NoError(t, c.SendTo([]byte("x"), netip.AddrPortFrom(netlab.LoopbackV4, 9)))
}

func TestSendVia(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	cfg := Config{Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp4"))}
	a, b := open(t, cfg), open(t, cfg)
	rb := pump(t, b)
	links := a.Links()
	require.Len(t, links, 1)
	require.NoError(t, a.SendVia([]byte("via lo"), links[0]))
	p := expect(t, rb, "via lo")
	assert.Equal(t, links[0].Index, p.IfIndex)
	assert.Equal(t, links[0].Addr, p.Src.Addr(), "the link's address is the source")
}

func TestStringers(t *testing.T) {
	// Links and errors read well in logs.
	netlab.Require(t)
	leakCheck(t)
	c := open(t, Config{Group: netip.AddrPortFrom(netip.Addr{}, freePort(t, "udp4")), MaxDatagram: 10})
	err := c.Send(make([]byte, 11))
	assert.Equal(t, "multicast: 11-byte datagram, at most 10: transport: datagram too large", err.Error())
	assert.Equal(t, fmt.Sprintf("0.0.0.0:%d", c.LocalAddr().Port()), c.LocalAddr().String())
}
