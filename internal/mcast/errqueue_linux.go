package mcast

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// refusalsSupported: Linux reports ICMP errors to an unconnected socket
// with IP_RECVERR and IPV6_RECVERR.
const refusalsSupported = true

// setRecvErr sets IP_RECVERR (IPV6_RECVERR when v6) on the socket.
func setRecvErr(rc syscall.RawConn, v6 bool) error {
	level, opt := unix.IPPROTO_IP, unix.IP_RECVERR
	if v6 {
		level, opt = unix.IPPROTO_IPV6, unix.IPV6_RECVERR
	}
	var err error
	if cerr := rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), level, opt, 1) }); cerr != nil {
		return cerr
	}
	return err
}

// pendingError reports whether err may be the socket's pending error
// (sk_err), which the kernel sets along with each ICMP error it queues and
// hands to the next read or write, whichever comes first, instead of its
// outcome: the errors ICMP destination unreachable, time exceeded,
// parameter problem and packet too big map to. A send that fails with one
// sent nothing, and the read of the queue entry behind it tells the rest.
func pendingError(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN,
		unix.ENONET, unix.ENOPROTOOPT, unix.EPROTO, unix.EACCES, unix.EMSGSIZE, unix.EOPNOTSUPP:
		return true
	}
	return false
}

// errQueued reports whether the socket has an error queued or pending
// (POLLERR), without waiting.
func (s *Socket) errQueued() bool {
	var revents int16
	_ = s.rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd)}} // POLLERR is reported unasked
		for {
			_, err := unix.Poll(fds, 0)
			if err != unix.EINTR {
				break
			}
		}
		revents = fds[0].Revents
	})
	return revents&unix.POLLERR != 0
}

// readQueued reads the next datagram into b or, when none waits, the next
// entry of the error queue, returned as the error (a *QueuedError). Data comes first: one recvmsg a
// datagram, and the queue is looked at only once the socket has no
// datagram left (or a read met the pending error of an entry), before
// the reader waits. It must look then, since an entry wakes the reader
// (EPOLLERR) even when a send has already taken the pending error that a
// plain read would have returned.
func (s *Socket) readQueued(b []byte) (n int, src netip.AddrPort, dst netip.Addr, ifIndex int, err error) {
	var (
		qe   *QueuedError
		ierr error
		oob  [128]byte // room for the packet info, or a sock_extended_err and its offender's address
	)
	err = s.rc.Read(func(fd uintptr) bool {
		for {
			var (
				oobn int
				from unix.Sockaddr
				rerr error
			)
			n, oobn, _, from, rerr = unix.Recvmsg(int(fd), b, oob[:], 0)
			switch {
			case rerr == nil:
				src = sockaddrAddrPort(from)
				dst, ifIndex = s.packetInfo(oob[:oobn])
				return true
			case rerr == unix.EINTR:
				continue
			case rerr != unix.EAGAIN && !pendingError(rerr):
				ierr = &net.OpError{Op: "read", Net: s.network(), Err: os.NewSyscallError("recvmsg", rerr)}
				return true
			}
			// No datagram, or the pending error of a queued entry.
			_, oobn, _, from, qerr := unix.Recvmsg(int(fd), nil, oob[:], unix.MSG_ERRQUEUE)
			switch {
			case qerr == nil:
				qe = parseQueued(from, oob[:oobn], s.v6)
				return true
			case qerr == unix.EINTR || (qerr == unix.EAGAIN && rerr != unix.EAGAIN):
				continue // read again: a datagram may wait behind the pending error
			case qerr != unix.EAGAIN:
				ierr = &net.OpError{Op: "read", Net: s.network(), Err: os.NewSyscallError("recvmsg", qerr)}
				return true
			}
			return false
		}
	})
	switch {
	case err != nil:
	case ierr != nil:
		err = ierr
	case qe != nil:
		err = qe
	default:
		return n, src, dst, ifIndex, nil
	}
	return 0, netip.AddrPort{}, netip.Addr{}, 0, err
}

// packetInfo reads a datagram's destination and arrival interface from
// the control messages of its recvmsg.
func (s *Socket) packetInfo(oob []byte) (dst netip.Addr, ifIndex int) {
	if !s.cm || len(oob) == 0 {
		return netip.Addr{}, 0
	}
	if s.v6 {
		var cm ipv6.ControlMessage
		if cm.Parse(oob) != nil {
			return netip.Addr{}, 0
		}
		return cmAddr(cm.Dst), cm.IfIndex
	}
	var cm ipv4.ControlMessage
	if cm.Parse(oob) != nil {
		return netip.Addr{}, 0
	}
	return cmAddr(cm.Dst), cm.IfIndex
}

// sockaddrAddrPort is sa as an address and port: IPv4 in its 4-byte form,
// a link-local IPv6 address with its interface's name as zone.
func sockaddrAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.ZoneId != 0 && !a.Is4In6() {
			a = a.WithZone(zoneName(int(sa.ZoneId)))
		}
		return netip.AddrPortFrom(a.Unmap(), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// parseQueued describes one entry of the error queue: from is the
// msg_name of its recvmsg, the datagram's destination, and oob its control
// messages, which carry a sock_extended_err and the ICMP sender.
func parseQueued(from unix.Sockaddr, oob []byte, v6 bool) *QueuedError {
	qe := &QueuedError{Dst: sockaddrAddrPort(from)}
	level, typ := unix.IPPROTO_IP, unix.IP_RECVERR
	origin := uint8(unix.SO_EE_ORIGIN_ICMP)
	if v6 {
		level, typ, origin = unix.IPPROTO_IPV6, unix.IPV6_RECVERR, unix.SO_EE_ORIGIN_ICMP6
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return qe
	}
	const eeLen = int(unsafe.Sizeof(unix.SockExtendedErr{}))
	for _, m := range msgs {
		if int(m.Header.Level) != level || int(m.Header.Type) != typ || len(m.Data) < eeLen {
			continue
		}
		ee := (*unix.SockExtendedErr)(unsafe.Pointer(&m.Data[0]))
		qe.Errno = syscall.Errno(ee.Errno)
		if ee.Origin != origin {
			break
		}
		qe.ICMP, qe.Type, qe.Code = true, ee.Type, ee.Code
		qe.From = offender(m.Data[eeLen:])
		break
	}
	return qe
}

// offender reads the sockaddr the kernel puts after a sock_extended_err
// (SO_EE_OFFENDER): the sender of the ICMP message.
func offender(b []byte) netip.Addr {
	if len(b) < 2 {
		return netip.Addr{}
	}
	switch binary.NativeEndian.Uint16(b) {
	case unix.AF_INET:
		if len(b) >= 8 {
			return netip.AddrFrom4([4]byte(b[4:8]))
		}
	case unix.AF_INET6:
		if len(b) >= 24 {
			return netip.AddrFrom16([16]byte(b[8:24]))
		}
	}
	return netip.Addr{}
}

// zones caches the names of the interfaces by index, as package net does
// for the zones of the addresses it returns: a lookup asks the kernel for
// every interface, too dear for each datagram from a link-local address.
var zones struct {
	sync.Mutex
	at    time.Time // of the last refresh
	names map[int]string
}

// zoneRefresh is how long a cached name is trusted; a name not cached
// refreshes the cache at most once a second.
const zoneRefresh = time.Minute

// zoneName is the name of interface index, or the index as a string when
// it has none (any more).
func zoneName(index int) string {
	zones.Lock()
	defer zones.Unlock()
	age := time.Since(zones.at)
	name, ok := zones.names[index]
	if (!ok && age >= time.Second) || age >= zoneRefresh {
		if ifis, err := net.Interfaces(); err == nil {
			zones.at = time.Now()
			zones.names = make(map[int]string, len(ifis))
			for _, ifi := range ifis {
				zones.names[ifi.Index] = ifi.Name
			}
			name, ok = zones.names[index]
		}
	}
	if !ok {
		return strconv.Itoa(index)
	}
	return name
}
