package mcast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ErrNoControl reports a WriteFrom on a platform that takes no control
// messages (Windows): the caller sends with Multicast instead.
var ErrNoControl = errors.New("mcast: control messages not supported")

// Socket is one UDP socket of one address family. Its methods are safe for
// concurrent use.
type Socket struct {
	v6 bool
	uc *net.UDPConn
	p4 *ipv4.PacketConn // when !v6
	p6 *ipv6.PacketConn // when v6
	cm bool             // control messages on: ReadFrom reports dst and ifIndex

	// recvErr is set by ReportRefusals: the kernel queues ICMP errors
	// about the datagrams the socket sends, and ReadFrom returns them.
	recvErr bool
	rc      syscall.RawConn

	// sendMu serialises choosing the multicast interface and the write
	// after it, which works the same on every platform (per-datagram
	// control messages do not exist on Windows).
	sendMu sync.Mutex
}

// Listen opens a UDP socket of one family (IPv6 when v6) bound to the
// wildcard address and port (0: an ephemeral one). shared sets SharedPort,
// so that several sockets, in this process or others, can bind the same
// group port and all receive its multicast.
func Listen(v6 bool, port uint16, shared bool) (*Socket, error) {
	var lc net.ListenConfig
	if shared {
		lc.Control = SharedPort
	}
	network, host := "udp4", "0.0.0.0"
	if v6 {
		network, host = "udp6", "::"
	}
	pc, err := lc.ListenPacket(context.Background(), network, net.JoinHostPort(host, strconv.Itoa(int(port))))
	if err != nil {
		return nil, err
	}
	s := &Socket{v6: v6, uc: pc.(*net.UDPConn)}
	// Control messages are unsupported on some platforms (Windows):
	// ReadFrom then reports no destination and interface index 0, and
	// the caller cannot filter datagrams by destination.
	if v6 {
		s.p6 = ipv6.NewPacketConn(s.uc)
		s.cm = s.p6.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true) == nil
	} else {
		s.p4 = ipv4.NewPacketConn(s.uc)
		s.cm = s.p4.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true) == nil
	}
	return s, nil
}

// ReportRefusals asks the kernel to report the ICMP errors that come back
// about datagrams s sends, such as a port unreachable from a destination
// where nothing listens, and reports whether it will: on Linux it sets
// IP_RECVERR (IPV6_RECVERR); other platforms report nothing to a socket
// that is not connected, and it returns false there. Call it before the
// first ReadFrom.
//
// ReadFrom then returns each entry of the socket's error queue as a
// *QueuedError, and the writes of s retry a send that failed with the
// pending error of an earlier datagram: with IP_RECVERR set, Linux hands
// each ICMP error to the next read or write of the socket as well, and a
// write that gets it sends nothing.
func (s *Socket) ReportRefusals() bool {
	if !refusalsSupported {
		return false
	}
	rc, err := s.uc.SyscallConn()
	if err != nil || setRecvErr(rc, s.v6) != nil {
		return false
	}
	s.rc, s.recvErr = rc, true
	return true
}

// network is the socket's network, for errors.
func (s *Socket) network() string {
	if s.v6 {
		return "udp6"
	}
	return "udp4"
}

// V6 reports whether s is an IPv6 socket.
func (s *Socket) V6() bool { return s.v6 }

// SetMulticastOptions sets the hop limit (IPv4 TTL) of the multicast s
// sends, from 1 to 255, and whether it is looped back to this host's
// sockets.
func (s *Socket) SetMulticastOptions(hopLimit int, loopback bool) error {
	if s.v6 {
		if err := s.p6.SetMulticastHopLimit(hopLimit); err != nil {
			return fmt.Errorf("setting the multicast hop limit: %w", err)
		}
		if err := s.p6.SetMulticastLoopback(loopback); err != nil {
			return fmt.Errorf("setting multicast loopback: %w", err)
		}
		return nil
	}
	if err := s.p4.SetMulticastTTL(hopLimit); err != nil {
		return fmt.Errorf("setting the multicast TTL: %w", err)
	}
	if err := s.p4.SetMulticastLoopback(loopback); err != nil {
		return fmt.Errorf("setting multicast loopback: %w", err)
	}
	return nil
}

// SetUnicastHopLimit sets the hop limit (IPv4 TTL) of the unicast s sends.
func (s *Socket) SetUnicastHopLimit(hopLimit int) error {
	var err error
	if s.v6 {
		err = s.p6.SetHopLimit(hopLimit)
	} else {
		err = s.p4.SetTTL(hopLimit)
	}
	if err != nil {
		return fmt.Errorf("setting the unicast hop limit: %w", err)
	}
	return nil
}

// ReadFrom reads one datagram into b. src is its source, IPv4 in its
// 4-byte form; dst is its destination address and ifIndex the interface
// it arrived on, where the platform reports them (zero values otherwise).
//
// After ReportRefusals, it also returns each entry of the socket's error
// queue, as an error of type *QueuedError, once no datagram is waiting
// (datagrams come first: one system call each); reading goes on after one.
func (s *Socket) ReadFrom(b []byte) (n int, src netip.AddrPort, dst netip.Addr, ifIndex int, err error) {
	if !s.recvErr {
		return s.readFrom(b)
	}
	return s.readQueued(b)
}

// readFrom reads one datagram, as ReadFrom does without the error queue.
func (s *Socket) readFrom(b []byte) (n int, src netip.AddrPort, dst netip.Addr, ifIndex int, err error) {
	if !s.cm {
		n, src, err = s.uc.ReadFromUDPAddrPort(b)
		if err != nil {
			return 0, netip.AddrPort{}, netip.Addr{}, 0, err
		}
		return n, unmap(src), netip.Addr{}, 0, nil
	}
	var from net.Addr
	var cmDst net.IP
	if s.v6 {
		var cm *ipv6.ControlMessage
		n, cm, from, err = s.p6.ReadFrom(b)
		if cm != nil {
			cmDst, ifIndex = cm.Dst, cm.IfIndex
		}
	} else {
		var cm *ipv4.ControlMessage
		n, cm, from, err = s.p4.ReadFrom(b)
		if cm != nil {
			cmDst, ifIndex = cm.Dst, cm.IfIndex
		}
	}
	if err != nil {
		return 0, netip.AddrPort{}, netip.Addr{}, 0, err
	}
	if ua, ok := from.(*net.UDPAddr); ok {
		src = unmap(ua.AddrPort())
	}
	return n, src, cmAddr(cmDst), ifIndex, nil
}

// cmAddr is a destination address from a control message, IPv4 in its
// 4-byte form.
func cmAddr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// WriteTo sends b to dst by unicast, or by multicast on the interface the
// last Multicast chose.
func (s *Socket) WriteTo(b []byte, dst netip.AddrPort) error {
	return s.write(func() error {
		_, err := s.uc.WriteToUDPAddrPort(b, dst)
		return err
	})
}

// A write that keeps meeting pending errors is tried again while errors
// are queued, up to maxWriteTries in all: reading each queued ICMP error
// sets the pending error anew while more are queued, so a write may meet
// one for every entry the reader takes meanwhile, and the queue is bounded
// by the receive buffer, a few hundred entries. A failure seen with the
// queue empty is tried again too, up to blindTries such failures: the
// reader may have taken the last entry after the failure (whose error the
// failure took), and a write's own error (no route, say) looks the same.
const (
	blindTries    = 8
	maxWriteTries = 256
)

// write runs send, and runs it again while it fails with what may be the
// pending error of an ICMP error about an earlier datagram (see
// ReportRefusals): that failure sent nothing and cleared the error.
func (s *Socket) write(send func() error) error {
	if !s.recvErr {
		return send()
	}
	return retryPending(send, s.errQueued)
}

// retryPending runs send until it succeeds or fails otherwise than with a
// pending error, within the bounds above; queued reports whether the
// socket has errors queued.
func retryPending(send func() error, queued func() bool) error {
	err := send()
	for try, blind := 1, 0; err != nil && try < maxWriteTries && pendingError(err); try++ {
		if !queued() {
			if blind++; blind >= blindTries {
				break
			}
		}
		err = send()
	}
	return err
}

// Multicast sends b to group out of interface ifi.
func (s *Socket) Multicast(b []byte, ifi *net.Interface, group netip.AddrPort) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	var err error
	if s.v6 {
		err = s.p6.SetMulticastInterface(ifi)
	} else {
		err = s.p4.SetMulticastInterface(ifi)
	}
	if err != nil {
		return fmt.Errorf("choosing interface %s: %w", ifi.Name, err)
	}
	return s.WriteTo(b, group)
}

// WriteFrom sends b to dst from the source address src out of interface
// ifIndex, with a control message (IP_PKTINFO, IPV6_PKTINFO). It fails
// with ErrNoControl where the platform takes none, and with the kernel's
// error when src is not an address of this host.
func (s *Socket) WriteFrom(b []byte, dst netip.AddrPort, src netip.Addr, ifIndex int) error {
	if !s.cm {
		return ErrNoControl
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.write(func() error {
		var err error
		if s.v6 {
			_, err = s.p6.WriteTo(b, &ipv6.ControlMessage{Src: src.AsSlice(), IfIndex: ifIndex}, net.UDPAddrFromAddrPort(dst))
		} else {
			_, err = s.p4.WriteTo(b, &ipv4.ControlMessage{Src: src.AsSlice(), IfIndex: ifIndex}, net.UDPAddrFromAddrPort(dst))
		}
		return err
	})
}

// JoinGroup joins group on interface ifi.
func (s *Socket) JoinGroup(ifi *net.Interface, group netip.Addr) error {
	ga := &net.UDPAddr{IP: group.AsSlice()}
	if s.v6 {
		return s.p6.JoinGroup(ifi, ga)
	}
	return s.p4.JoinGroup(ifi, ga)
}

// LeaveGroup leaves group on interface ifi.
func (s *Socket) LeaveGroup(ifi *net.Interface, group netip.Addr) error {
	ga := &net.UDPAddr{IP: group.AsSlice()}
	if s.v6 {
		return s.p6.LeaveGroup(ifi, ga)
	}
	return s.p4.LeaveGroup(ifi, ga)
}

// LocalAddr reports the address the socket is bound to.
func (s *Socket) LocalAddr() netip.AddrPort {
	return unmap(s.uc.LocalAddr().(*net.UDPAddr).AddrPort())
}

// Close closes the socket, which unblocks ReadFrom and leaves its groups.
func (s *Socket) Close() error { return s.uc.Close() }

// ForGroup reports whether a datagram whose destination is dst, as
// ReadFrom reports it, is for group: it is unicast or of unknown
// destination, or sent to group itself. A socket that shares its port may
// receive the multicast of other groups where the platform cannot limit it
// to its own (see SharedPort).
func ForGroup(dst, group netip.Addr) bool {
	return !dst.IsMulticast() || dst.WithZone("") == group.WithZone("")
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
