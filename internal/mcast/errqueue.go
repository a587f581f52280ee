package mcast

import (
	"fmt"
	"net/netip"
	"syscall"
)

// QueuedError is one entry of a socket's error queue, which Linux keeps
// when ReportRefusals is on: an ICMP error about a datagram the socket
// sent, or an error of local origin. ReadFrom returns it as its error.
type QueuedError struct {
	// Dst is the destination of the datagram the error is about.
	Dst netip.AddrPort
	// From is the address of the host that sent the ICMP message, or
	// invalid when the error is not one (ICMP false).
	From netip.Addr
	// ICMP reports an ICMP message (ICMPv6 on an IPv6 socket); Type and
	// Code are its.
	ICMP       bool
	Type, Code uint8
	// Errno is the error the kernel maps the entry to: ECONNREFUSED for a
	// port unreachable, say.
	Errno syscall.Errno
}

func (e *QueuedError) Error() string {
	if !e.ICMP {
		return fmt.Sprintf("mcast: datagram to %s: %v", e.Dst, e.Errno)
	}
	return fmt.Sprintf("mcast: datagram to %s: %v (ICMP type %d code %d from %s)", e.Dst, e.Errno, e.Type, e.Code, e.From)
}

// Unwrap returns Errno.
func (e *QueuedError) Unwrap() error { return e.Errno }

// ICMP types and codes of a refusal.
const (
	icmpUnreachable  = 3 // ICMP Destination Unreachable
	icmpHost         = 1
	icmpPort         = 3
	icmp6Unreachable = 1 // ICMPv6 Destination Unreachable
	icmp6AddrUnreach = 3
	icmp6PortUnreach = 4
)

// Refused reports whether the entry is a refusal by the destination
// itself: an ICMP port or host unreachable (ICMPv6 port or address
// unreachable) sent by Dst's own address. An ICMP error from a router, or
// any other entry, is not.
func (e *QueuedError) Refused() bool {
	if !e.ICMP || !e.Dst.IsValid() || e.From.WithZone("") != e.Dst.Addr().WithZone("") {
		return false
	}
	if e.Dst.Addr().Is4() {
		return e.Type == icmpUnreachable && (e.Code == icmpPort || e.Code == icmpHost)
	}
	return e.Type == icmp6Unreachable && (e.Code == icmp6PortUnreach || e.Code == icmp6AddrUnreach)
}
