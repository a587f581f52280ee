package mcast

import (
	"fmt"
	"net/netip"
	"strconv"
	"syscall"
)

// msgProbe is Linux's MSG_PROBE (glibc's bits/socket.h: "do not send,
// only probe the path"), which package syscall does not name.
const msgProbe = 0x10

// ConfirmNeighbour tells the kernel that dst's host has just answered a
// datagram s sent it, so that its neighbour entry (ARP for IPv4, neighbour
// discovery for IPv6) is reachable without a probe: a zero-length send
// with MSG_CONFIRM and MSG_PROBE, which confirms the neighbour dst is
// routed through and sends nothing (udp(7), send(2)). Without it the
// kernel, which hears no confirmation from UDP, lets the entry go stale
// about 30 s after it was resolved and re-probes it, two frames each time,
// on the next send.
//
// Call it only with proof that the neighbour receives: a reply to a
// datagram sent to it (a nonce it echoed). A datagram that merely came
// from dst proves nothing about the way back.
func (s *Socket) ConfirmNeighbour(dst netip.AddrPort) error {
	var sa syscall.Sockaddr
	addr := dst.Addr()
	switch {
	case !s.v6 && addr.Unmap().Is4():
		sa = &syscall.SockaddrInet4{Port: int(dst.Port()), Addr: addr.Unmap().As4()}
	case s.v6 && addr.Is6() && !addr.Is4In6():
		var zone uint32
		if z := addr.Zone(); z != "" {
			i, err := strconv.Atoi(ZoneIndex(z, nil))
			if err != nil {
				return fmt.Errorf("confirming %s: unknown zone %q", dst, z)
			}
			zone = uint32(i)
		}
		sa = &syscall.SockaddrInet6{Port: int(dst.Port()), Addr: addr.As16(), ZoneId: zone}
	default:
		return fmt.Errorf("confirming %s: not an address of the socket's family", dst)
	}
	rc, err := s.uc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = syscall.Sendmsg(int(fd), nil, nil, sa, syscall.MSG_CONFIRM|msgProbe)
		return true // never wait for the socket to be writable: it sends nothing
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("confirming %s: %w", dst, serr)
	}
	return nil
}
