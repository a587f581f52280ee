package mcast

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/internal/netlab"
)

// The tests below use real sockets on lo inside netlab's private network
// namespace: IPv4 multicast there has the source netlab.LoopbackV4, IPv6
// multicast works on lo when the kernel has IPv6.

func TestMain(m *testing.M) { netlab.Main(m) }

// leakCheck checks, after t's cleanups (registered later, so run
// earlier), that t left no goroutine running.
func leakCheck(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// lo returns the namespace's loopback interface.
func lo(t *testing.T) *net.Interface {
	t.Helper()
	ifi, err := net.InterfaceByName(netlab.Loopback)
	require.NoError(t, err)
	return ifi
}

// listen opens a socket for t, closed at its end.
func listen(t *testing.T, v6 bool, port uint16, shared bool) *Socket {
	t.Helper()
	s, err := Listen(v6, port, shared)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// read is one datagram as ReadFrom reports it.
type read struct {
	b       string
	src     netip.AddrPort
	dst     netip.Addr
	ifIndex int
}

// reader reads s in a goroutine until s is closed, and hands each
// datagram over on the channel it returns.
func reader(t *testing.T, s *Socket) <-chan read {
	t.Helper()
	ch := make(chan read, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, src, dst, ifIndex, err := s.ReadFrom(buf)
			if err != nil {
				return
			}
			select {
			case ch <- read{string(buf[:n]), src, dst, ifIndex}:
			default: // the test looks at the first few only
			}
		}
	}()
	t.Cleanup(func() {
		_ = s.Close()
		<-done
	})
	return ch
}

// next waits for the next datagram on ch whose payload is b. Datagrams
// with another payload (none is expected, but a test must not hang on one)
// fail the test.
func next(t *testing.T, ch <-chan read, b string) read {
	t.Helper()
	select {
	case r := <-ch:
		require.Equal(t, b, r.b)
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("no datagram %q", b)
		return read{}
	}
}

// groups returns the multicast groups joined on lo, as ip(8) lists them.
func groups(t *testing.T) string {
	t.Helper()
	return netlab.MustIP(t, "maddr", "show", "dev", netlab.Loopback)
}

func TestSocketMulticastIPv4(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	group := netip.MustParseAddr("239.255.112.1")
	rx := listen(t, false, 0, true)
	port := rx.LocalAddr().Port()
	// A second socket on the same port: SharedPort lets both bind it, and
	// both receive the group.
	rx2 := listen(t, false, port, true)
	tx := listen(t, false, 0, false)
	require.NoError(t, tx.SetMulticastOptions(1, true))
	require.NoError(t, rx.JoinGroup(lo(t), group))
	require.NoError(t, rx2.JoinGroup(lo(t), group))
	ch, ch2 := reader(t, rx), reader(t, rx2)
	assert.False(t, rx.V6())

	dst := netip.AddrPortFrom(group, port)
	require.NoError(t, tx.Multicast([]byte("one"), lo(t), dst))
	for _, c := range []<-chan read{ch, ch2} {
		r := next(t, c, "one")
		assert.Equal(t, group, r.dst, "the destination from the control message")
		assert.Equal(t, lo(t).Index, r.ifIndex, "the arrival interface from the control message")
		assert.Equal(t, netip.AddrPortFrom(netlab.LoopbackV4, tx.LocalAddr().Port()), r.src)
	}

	// WriteFrom chooses the source address (IP_PKTINFO): 127.0.0.1, not
	// the address the kernel picks for multicast on lo.
	require.NoError(t, tx.WriteFrom([]byte("two"), dst, netip.MustParseAddr("127.0.0.1"), lo(t).Index))
	var r read
	for _, c := range []<-chan read{ch, ch2} {
		r = next(t, c, "two")
		assert.Equal(t, netip.MustParseAddr("127.0.0.1"), r.src.Addr())
		assert.Equal(t, group, r.dst)
	}

	// Unicast to the group port: its destination is lo's address. It
	// reaches one of the two sockets (SO_REUSEPORT balances unicast).
	require.NoError(t, tx.WriteTo([]byte("three"), netip.AddrPortFrom(netlab.LoopbackV4, port)))
	select {
	case r = <-ch:
	case r = <-ch2:
	case <-time.After(10 * time.Second):
		t.Fatal("no unicast datagram")
	}
	assert.Equal(t, "three", r.b)
	assert.Equal(t, netlab.LoopbackV4, r.dst)
	assert.True(t, ForGroup(r.dst, group))
}

func TestSocketMulticastIPv6(t *testing.T) {
	netlab.RequireIPv6(t)
	leakCheck(t)
	group := netip.MustParseAddr("ff02::8070:1")
	rx := listen(t, true, 0, true)
	port := rx.LocalAddr().Port()
	tx := listen(t, true, 0, false)
	require.NoError(t, tx.SetMulticastOptions(1, true))
	require.NoError(t, tx.SetUnicastHopLimit(255))
	require.NoError(t, rx.JoinGroup(lo(t), group))
	ch := reader(t, rx)
	assert.True(t, rx.V6())

	require.NoError(t, tx.Multicast([]byte("one"), lo(t), netip.AddrPortFrom(group, port)))
	r := next(t, ch, "one")
	assert.Equal(t, group, r.dst.WithZone(""))
	assert.Equal(t, lo(t).Index, r.ifIndex)
	assert.Equal(t, tx.LocalAddr().Port(), r.src.Port())
	assert.True(t, r.src.Addr().Is6())
}

func TestSocketClosedRead(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	s, err := Listen(false, 0, false)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		_, _, _, _, err := s.ReadFrom(make([]byte, 10))
		errc <- err
	}()
	require.NoError(t, s.Close())
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock ReadFrom")
	}
}

// TestMembershipUpdate follows one socket's membership as interfaces come,
// fail to join, get renamed and go, checking the kernel's own list of
// memberships (ip maddr) rather than the Membership's word.
func TestMembershipUpdate(t *testing.T) {
	netlab.Require(t)
	group := netip.MustParseAddr("239.255.112.2")
	s := listen(t, false, 0, true)
	m := NewMembership(s, group, nil, nil)
	assert.False(t, strings.Contains(groups(t), group.String()))

	loIfi := *lo(t)
	loIf := Interface{Interface: loIfi, Addrs: []netip.Addr{netlab.LoopbackV4}}

	// An interface whose join fails (no such index) is left out, and
	// tried again at the next Update.
	gone := Interface{
		Interface: net.Interface{Index: 99999, Name: "gone0", Flags: net.FlagUp | net.FlagMulticast},
		Addrs:     []netip.Addr{netip.MustParseAddr("192.0.2.1")},
	}
	assert.False(t, m.Update([]Interface{gone}))
	assert.Empty(t, m.Links())

	// lo is the only candidate: joined.
	assert.True(t, m.Update([]Interface{loIf}))
	require.Len(t, m.Links(), 1)
	l, ok := m.Link(loIfi.Index)
	require.True(t, ok)
	assert.Equal(t, netlab.LoopbackV4, l.Addr(false))
	idx, ok := m.IndexOf(netlab.Loopback)
	assert.True(t, ok)
	assert.Equal(t, loIfi.Index, idx)
	assert.Contains(t, groups(t), group.String())

	// Nothing changed: no change reported.
	assert.False(t, m.Update([]Interface{loIf}))

	// An address changed: reported, the link updated.
	loIf2 := loIf
	loIf2.Addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netlab.LoopbackV4}
	assert.True(t, m.Update([]Interface{loIf2}))
	l, _ = m.Link(loIfi.Index)
	assert.Equal(t, loIf2.Addrs, l.Addrs)

	// The index now names another interface: left and joined again, under
	// the new name.
	renamed := loIf2
	renamed.Name = "lo-renamed"
	assert.True(t, m.Update([]Interface{renamed}))
	require.Len(t, m.Links(), 1)
	assert.Equal(t, "lo-renamed", m.Links()[0].Name)
	assert.Contains(t, groups(t), group.String())

	// Gone: left.
	assert.True(t, m.Update(nil))
	assert.Empty(t, m.Links())
	_, ok = m.Link(loIfi.Index)
	assert.False(t, ok)
	assert.NotContains(t, groups(t), group.String())
}

// TestMembershipNames: with names, only the named interfaces are joined,
// loopback included.
func TestMembershipNames(t *testing.T) {
	netlab.Require(t)
	group := netip.MustParseAddr("239.255.112.3")
	s := listen(t, false, 0, true)
	ifs, err := Interfaces()
	require.NoError(t, err)

	m := NewMembership(s, group, []string{"no-such-interface"}, nil)
	assert.False(t, m.Update(ifs))
	assert.Empty(t, m.Links())
	assert.NotContains(t, groups(t), group.String())

	m = NewMembership(s, group, []string{netlab.Loopback}, nil)
	assert.True(t, m.Update(ifs))
	require.Len(t, m.Links(), 1)
	assert.Equal(t, netlab.Loopback, m.Links()[0].Name)
	assert.Contains(t, m.Links()[0].Addrs, netlab.LoopbackV4, "Interfaces lists lo's addresses")
	assert.Contains(t, groups(t), group.String())
}
