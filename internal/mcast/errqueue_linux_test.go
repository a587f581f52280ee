package mcast

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pirlan/pir/internal/netlab"
)

// outcome is one return of ReadFrom: a datagram or an error.
type outcome struct {
	b   string
	src netip.AddrPort
	dst netip.Addr
	ifi int
	err error
}

// readAll reads s in a goroutine until it is closed, handing over every
// outcome but the one that ends it. The cleanup closes s and waits.
func readAll(t *testing.T, s *Socket) <-chan outcome {
	t.Helper()
	ch := make(chan outcome, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, src, dst, ifi, err := s.ReadFrom(buf)
			var qe *QueuedError
			if err != nil && !errors.As(err, &qe) {
				return // closed
			}
			select {
			case ch <- outcome{string(buf[:n]), src, dst, ifi, err}:
			default:
				t.Error("reader: channel full")
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = s.Close()
		<-done
	})
	return ch
}

// await returns the next outcome on ch, failing the test after a
// generous deadline.
func await(t *testing.T, ch <-chan outcome, what string) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(10 * time.Second):
		t.Fatalf("nothing read while waiting for %s", what)
		return outcome{}
	}
}

// closedPort returns a UDP address on host where nothing listens: a port
// just bound and released.
func closedPort(t *testing.T, v6 bool, host netip.Addr) netip.AddrPort {
	t.Helper()
	s := listen(t, v6, 0, false)
	port := s.LocalAddr().Port()
	require.NoError(t, s.Close())
	return netip.AddrPortFrom(host, port)
}

// families runs f for IPv4 on netlab.LoopbackV4 and IPv6 on ::1.
func families(t *testing.T, f func(t *testing.T, v6 bool, host netip.Addr)) {
	t.Run("IPv4", func(t *testing.T) {
		netlab.Require(t)
		leakCheck(t)
		f(t, false, netlab.LoopbackV4)
	})
	t.Run("IPv6", func(t *testing.T) {
		netlab.RequireIPv6(t)
		leakCheck(t)
		f(t, true, netlab.LoopbackV6)
	})
}

// A datagram to a closed port comes back as a refusal: a QueuedError that
// names the destination, from the destination itself.
func TestRefusalReported(t *testing.T) {
	families(t, func(t *testing.T, v6 bool, host netip.Addr) {
		s := listen(t, v6, 0, false)
		require.True(t, s.ReportRefusals())
		ch := readAll(t, s)
		dst := closedPort(t, v6, host)

		require.NoError(t, s.WriteTo([]byte("anyone?"), dst))
		o := await(t, ch, "the refusal")
		var qe *QueuedError
		require.ErrorAs(t, o.err, &qe)
		t.Logf("kernel reported: %+v (%v)", *qe, qe)
		assert.True(t, qe.Refused())
		assert.Equal(t, dst, qe.Dst)
		assert.Equal(t, host, qe.From)
		assert.ErrorIs(t, o.err, syscall.ECONNREFUSED)
		assert.True(t, qe.ICMP)
		if v6 {
			assert.Equal(t, [2]uint8{1, 4}, [2]uint8{qe.Type, qe.Code}, "ICMPv6 port unreachable")
		} else {
			assert.Equal(t, [2]uint8{3, 3}, [2]uint8{qe.Type, qe.Code}, "ICMP port unreachable")
		}

		// Datagrams still arrive, with their destination and interface.
		peer := listen(t, v6, 0, false)
		require.NoError(t, peer.WriteTo([]byte("hi"), netip.AddrPortFrom(host, s.LocalAddr().Port())))
		o = await(t, ch, "a datagram")
		require.NoError(t, o.err)
		assert.Equal(t, "hi", o.b)
		assert.Equal(t, netip.AddrPortFrom(host, peer.LocalAddr().Port()), o.src)
		assert.Equal(t, host, o.dst)
		assert.Positive(t, o.ifi)
	})
}

// A datagram to an open port comes back as nothing but the answer.
func TestNoRefusalFromOpenPort(t *testing.T) {
	families(t, func(t *testing.T, v6 bool, host netip.Addr) {
		s := listen(t, v6, 0, false)
		require.True(t, s.ReportRefusals())
		ch := readAll(t, s)
		peer := listen(t, v6, 0, false)
		peerCh := readAll(t, peer)

		require.NoError(t, s.WriteTo([]byte("ping"), netip.AddrPortFrom(host, peer.LocalAddr().Port())))
		o := await(t, peerCh, "the ping")
		require.NoError(t, o.err)
		require.NoError(t, peer.WriteTo([]byte("pong"), o.src))
		o = await(t, ch, "the pong")
		require.NoError(t, o.err, "the first thing read is the answer, not an error")
		assert.Equal(t, "pong", o.b)
	})
}

// With IP_RECVERR, Linux also hands an ICMP error to the next write, which
// then sends nothing: the write is retried, and the queue entry is still
// read afterwards. Without the retry the second WriteTo fails with
// ECONNREFUSED (seen by removing it).
func TestWriteAfterRefusal(t *testing.T) {
	families(t, func(t *testing.T, v6 bool, host netip.Addr) {
		s := listen(t, v6, 0, false)
		require.True(t, s.ReportRefusals())
		peer := listen(t, v6, 0, false)
		peerCh := readAll(t, peer)
		dst := closedPort(t, v6, host)

		require.NoError(t, s.WriteTo([]byte("anyone?"), dst))
		waitErrQueue(t, s)
		require.NoError(t, s.WriteTo([]byte("next"), netip.AddrPortFrom(host, peer.LocalAddr().Port())),
			"a write after an ICMP error")
		o := await(t, peerCh, "the write after the refusal")
		require.NoError(t, o.err)
		assert.Equal(t, "next", o.b)

		ch := readAll(t, s)
		var qe *QueuedError
		require.ErrorAs(t, await(t, ch, "the refusal").err, &qe)
		assert.True(t, qe.Refused())
		assert.Equal(t, dst, qe.Dst)
	})
}

// waitErrQueue waits until s has an error pending (POLLERR), for at most
// a generous deadline.
func waitErrQueue(t *testing.T, s *Socket) {
	t.Helper()
	var (
		n   int
		err error
	)
	require.NoError(t, s.rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: 0}} // POLLERR is always reported
		for {
			n, err = unix.Poll(fds, 10_000)
			if err != unix.EINTR {
				return
			}
		}
	}))
	require.NoError(t, err)
	require.Equal(t, 1, n, "no ICMP error within 10 s")
}

// A flood of refusals neither stalls the datagrams behind it nor makes a
// write fail.
func TestRefusalFlood(t *testing.T) {
	families(t, func(t *testing.T, v6 bool, host netip.Addr) {
		s := listen(t, v6, 0, false)
		require.True(t, s.ReportRefusals())
		ch := readAll(t, s)
		dst := closedPort(t, v6, host)
		peer := listen(t, v6, 0, false)

		const flood = 1000
		for i := range flood {
			require.NoError(t, s.WriteTo([]byte("anyone?"), dst), "write %d", i)
		}
		require.NoError(t, peer.WriteTo([]byte("after"), netip.AddrPortFrom(host, s.LocalAddr().Port())))
		refused := 0
		for {
			o := await(t, ch, "the datagram after the flood")
			if o.err == nil {
				require.Equal(t, "after", o.b)
				break
			}
			var qe *QueuedError
			require.ErrorAs(t, o.err, &qe)
			require.True(t, qe.Refused(), "%v", qe)
			refused++
		}
		// The kernel limits ICMP errors (net.ipv4.icmp_msgs_per_sec,
		// icmp_msgs_burst) and the queue's size (the receive buffer): a
		// share of the flood comes back.
		t.Logf("%d of %d datagrams refused before the datagram sent after them was read", refused, flood)
	})
}

func TestQueuedErrorRefused(t *testing.T) {
	v4 := netip.MustParseAddrPort("198.18.0.2:4000")
	v6 := netip.MustParseAddrPort("[fd42::2]:4000")
	for _, tc := range []struct {
		name string
		qe   QueuedError
		want bool
	}{
		{"port unreachable", QueuedError{Dst: v4, From: v4.Addr(), ICMP: true, Type: 3, Code: 3}, true},
		{"host unreachable from the host", QueuedError{Dst: v4, From: v4.Addr(), ICMP: true, Type: 3, Code: 1}, true},
		{"port unreachable from a router", QueuedError{Dst: v4, From: netip.MustParseAddr("198.18.0.1"), ICMP: true, Type: 3, Code: 3}, false},
		{"fragmentation needed", QueuedError{Dst: v4, From: v4.Addr(), ICMP: true, Type: 3, Code: 4}, false},
		{"time exceeded", QueuedError{Dst: v4, From: v4.Addr(), ICMP: true, Type: 11, Code: 0}, false},
		{"local error", QueuedError{Dst: v4, Errno: syscall.EMSGSIZE}, false},
		{"ICMPv6 port unreachable", QueuedError{Dst: v6, From: v6.Addr(), ICMP: true, Type: 1, Code: 4}, true},
		{"ICMPv6 address unreachable", QueuedError{Dst: v6, From: v6.Addr(), ICMP: true, Type: 1, Code: 3}, true},
		{"ICMPv6 from a router", QueuedError{Dst: v6, From: netip.MustParseAddr("fd42::1"), ICMP: true, Type: 1, Code: 4}, false},
		{"ICMPv6 packet too big", QueuedError{Dst: v6, From: v6.Addr(), ICMP: true, Type: 2, Code: 0}, false},
		{"ICMPv6 admin prohibited", QueuedError{Dst: v6, From: v6.Addr(), ICMP: true, Type: 1, Code: 1}, false},
		{"link-local, zones differ in form", QueuedError{Dst: netip.MustParseAddrPort("[fe80::2%eth0]:4000"),
			From: netip.MustParseAddr("fe80::2"), ICMP: true, Type: 1, Code: 4}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.qe.Refused())
		})
	}
}

// kernelV4 is the control message Linux 6.18 (amd64) gave with a port
// unreachable from 127.0.0.1: a cmsghdr (48 bytes, SOL_IP, IP_RECVERR),
// a sock_extended_err (errno 111, origin ICMP, type 3, code 3) and the
// offender, a sockaddr_in for 127.0.0.1.
var kernelV4 = []byte{48, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11, 0, 0, 0,
	111, 0, 0, 0, 2, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}

func TestParseQueuedKernelBytes(t *testing.T) {
	qe := parseQueued(&unix.SockaddrInet4{Port: 4000, Addr: [4]byte{127, 0, 0, 1}}, kernelV4, false)
	assert.Equal(t, QueuedError{Dst: netip.MustParseAddrPort("127.0.0.1:4000"), From: netip.MustParseAddr("127.0.0.1"),
		ICMP: true, Type: 3, Code: 3, Errno: syscall.ECONNREFUSED}, *qe)
	assert.True(t, qe.Refused())
	// The same bytes on an IPv6 socket are not its kind of message.
	assert.False(t, parseQueued(&unix.SockaddrInet4{Port: 4000, Addr: [4]byte{127, 0, 0, 1}}, kernelV4, true).ICMP)
}

// parseQueued reads what the kernel wrote; it must not crash on any of it.
func FuzzParseQueued(f *testing.F) {
	v4 := kernelV4
	f.Add(v4, false)
	f.Add([]byte{}, true)
	f.Add(v4[:20], false)
	f.Fuzz(func(t *testing.T, oob []byte, v6 bool) {
		qe := parseQueued(&unix.SockaddrInet4{Port: 1, Addr: [4]byte{127, 0, 0, 1}}, oob, v6)
		_ = qe.Refused()
		_ = qe.Error()
	})
}

// A link-local destination gets its interface's name as zone, as the Src
// of a datagram does, so that it matches the address a member was heard
// from.
func TestQueuedLinkLocalZone(t *testing.T) {
	netlab.Require(t)
	ifi := lo(t)
	sa := &unix.SockaddrInet6{Port: 4000, ZoneId: uint32(ifi.Index), Addr: netip.MustParseAddr("fe80::2").As16()}
	qe := parseQueued(sa, nil, true)
	assert.Equal(t, netip.MustParseAddrPort("[fe80::2%"+ifi.Name+"]:4000"), qe.Dst)
	assert.False(t, qe.ICMP)

	sa.ZoneId = 0
	sa.Addr = netip.MustParseAddr("fd42::2").As16()
	assert.Equal(t, netip.MustParseAddrPort("[fd42::2]:4000"), parseQueued(sa, nil, true).Dst)
}

// A datagram from a link-local address reads with its interface's name as
// zone, as package net would give it, and its destination and interface
// from the packet info; a refusal queued meanwhile still comes.
func TestReadLinkLocalZone(t *testing.T) {
	netlab.RequireIPv6(t)
	leakCheck(t)
	ifi := lo(t)
	ll := netip.MustParseAddr("fe80::99")
	netlab.MustAddr6(t, ifi.Name, netip.PrefixFrom(ll, 64))
	t.Cleanup(func() { _, _ = netlab.IP("-6", "addr", "del", ll.String()+"/64", "dev", ifi.Name) })

	s := listen(t, true, 0, false)
	require.True(t, s.ReportRefusals())
	ch := readAll(t, s)
	peer := listen(t, true, 0, false)
	to := netip.AddrPortFrom(ll.WithZone(ifi.Name), s.LocalAddr().Port())
	require.NoError(t, peer.WriteTo([]byte("from fe80"), to))
	o := await(t, ch, "the datagram")
	require.NoError(t, o.err)
	assert.Equal(t, "from fe80", o.b)
	assert.Equal(t, netip.AddrPortFrom(ll.WithZone(ifi.Name), peer.LocalAddr().Port()), o.src)
	assert.Equal(t, ll, o.dst)
	assert.Equal(t, ifi.Index, o.ifi)

	require.NoError(t, s.WriteTo([]byte("anyone?"), closedPort(t, true, ll.WithZone(ifi.Name))))
	require.NoError(t, peer.WriteTo([]byte("again"), to))
	var got []string
	for range 2 {
		o := await(t, ch, "the refusal and the datagram")
		var qe *QueuedError
		if errors.As(o.err, &qe) {
			assert.True(t, qe.Refused())
			assert.Equal(t, ll.WithZone(ifi.Name), qe.Dst.Addr())
			got = append(got, "refusal")
			continue
		}
		require.NoError(t, o.err)
		got = append(got, o.b)
	}
	assert.ElementsMatch(t, []string{"refusal", "again"}, got)
}

// zoneName names an interface from its cache, and an index that names no
// interface by its number.
func TestZoneName(t *testing.T) {
	netlab.Require(t)
	ifi := lo(t)
	assert.Equal(t, ifi.Name, zoneName(ifi.Index))
	assert.Equal(t, "999999", zoneName(999999))
	assert.Equal(t, ifi.Name, zoneName(ifi.Index), "after a miss")
}

// retryPending tries a write again while its failures may be the pending
// error of a queued ICMP error. The race it must survive: a reader takes
// the queue's last entry between a failure and the look at the queue, so
// that the queue is seen empty although the failure took an error a
// retry would not meet again (TestRefusalFlood/dual to ::1 returned
// "sendto: connection refused" so, 1 loaded run in about 30, when 8 blind
// tries were spent with the queue full and the first empty look stopped).
func TestRetryPending(t *testing.T) {
	refused := &net.OpError{Op: "write", Err: os.NewSyscallError("sendto", unix.ECONNREFUSED)}
	for _, tc := range []struct {
		name string
		// fails is how many sends fail with refused before one succeeds
		// (-1: all do); queued says whether the queue is seen non-empty
		// after that many sends.
		fails  int
		queued func(sends int) bool
		sends  int
		err    bool
	}{
		{"no error", 0, func(int) bool { return false }, 1, false},
		{"drained after the ninth failure", 9, func(sends int) bool { return sends < 9 }, 10, false},
		{"queue full, then taken", 100, func(sends int) bool { return sends < 100 }, 101, false},
		{"own error", -1, func(int) bool { return false }, blindTries, true},
		{"queue never drains", -1, func(int) bool { return true }, maxWriteTries, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sends := 0
			err := retryPending(func() error {
				sends++
				if tc.fails < 0 || sends <= tc.fails {
					return refused
				}
				return nil
			}, func() bool { return tc.queued(sends) })
			assert.Equal(t, tc.sends, sends, "sends")
			if tc.err {
				assert.ErrorIs(t, err, unix.ECONNREFUSED)
			} else {
				assert.NoError(t, err)
			}
		})
	}
	// An error that cannot be a pending one is returned at once.
	sends := 0
	err := retryPending(func() error { sends++; return unix.EBADF }, func() bool { return true })
	assert.ErrorIs(t, err, unix.EBADF)
	assert.Equal(t, 1, sends)
}
