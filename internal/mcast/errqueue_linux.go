package mcast

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"unsafe"

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

// nextQueued waits until the socket has a datagram to read, which it
// leaves there (nil, nil), or an entry in its error queue, which it reads
// and returns. It checks the error queue at every wake-up, since an entry
// wakes the reader (EPOLLERR) even when a send has already taken the
// pending error that a plain read would have returned.
func (s *Socket) nextQueued() (*QueuedError, error) {
	var (
		qe   *QueuedError
		ierr error
		oob  [128]byte // a sock_extended_err and its offender's address, with room
	)
	err := s.rc.Read(func(fd uintptr) bool {
		for {
			_, oobn, _, from, err := unix.Recvmsg(int(fd), nil, oob[:], unix.MSG_ERRQUEUE)
			switch {
			case err == nil:
				qe = parseQueued(from, oob[:oobn], s.v6)
				return true
			case err == unix.EINTR:
				continue
			case err != unix.EAGAIN:
				ierr = &net.OpError{Op: "read", Net: s.network(), Err: os.NewSyscallError("recvmsg", err)}
				return true
			}
			// The queue is empty. A datagram, or the pending error of an
			// entry that arrived since (read it next), or nothing yet?
			_, _, err = unix.Recvfrom(int(fd), nil, unix.MSG_PEEK)
			switch {
			case err == nil:
				return true
			case err == unix.EAGAIN:
				return false
			case err == unix.EINTR || pendingError(err):
				continue
			}
			ierr = &net.OpError{Op: "read", Net: s.network(), Err: os.NewSyscallError("recvfrom", err)}
			return true
		}
	})
	if err != nil {
		return nil, err
	}
	return qe, ierr
}

// parseQueued describes one entry of the error queue: from is the
// msg_name of its recvmsg, the datagram's destination, and oob its control
// messages, which carry a sock_extended_err and the ICMP sender.
func parseQueued(from unix.Sockaddr, oob []byte, v6 bool) *QueuedError {
	qe := &QueuedError{}
	switch sa := from.(type) {
	case *unix.SockaddrInet4:
		qe.Dst = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.ZoneId != 0 && a.Is6() && !a.Is4In6() {
			a = a.WithZone(zoneName(int(sa.ZoneId)))
		}
		qe.Dst = netip.AddrPortFrom(a.Unmap(), uint16(sa.Port))
	}
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

// zoneName is the name of interface index, or the index as a string when
// it has none (any more).
func zoneName(index int) string {
	if ifi, err := net.InterfaceByIndex(index); err == nil {
		return ifi.Name
	}
	return strconv.Itoa(index)
}
