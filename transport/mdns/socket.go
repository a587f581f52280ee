package mdns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/pirlan/pir/internal/sockopt"
)

// hopLimit is the IP TTL of everything a Conn sends (RFC 6762 §11).
const hopLimit = 255

// socket is one UDP socket of one family. Its methods are safe for
// concurrent use.
type socket struct {
	v6 bool
	uc *net.UDPConn
	p4 *ipv4.PacketConn
	p6 *ipv6.PacketConn
	cm bool // control messages on: readFrom reports dst and ifIndex

	// sendMu serialises choosing the multicast interface and the write
	// after it, which works the same on every platform.
	sendMu sync.Mutex
}

// listen opens a UDP socket of one family bound to the wildcard address
// and port. shared lets it share the port with other mDNS software and
// other Conns (SO_REUSEADDR, SO_REUSEPORT). Multicast it sends has TTL 255
// and is looped back unless loopback is false.
func listen(v6 bool, port uint16, shared, loopback bool) (*socket, error) {
	var lc net.ListenConfig
	if shared {
		lc.Control = sockopt.SharedPort
	}
	network, host := "udp4", "0.0.0.0"
	if v6 {
		network, host = "udp6", "::"
	}
	pc, err := lc.ListenPacket(context.Background(), network, net.JoinHostPort(host, strconv.Itoa(int(port))))
	if err != nil {
		return nil, err
	}
	s := &socket{v6: v6, uc: pc.(*net.UDPConn)}
	if v6 {
		s.p6 = ipv6.NewPacketConn(s.uc)
		// Unsupported on some platforms (Windows): IfIndex is then 0.
		s.cm = s.p6.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true) == nil
		err = firstErr(s.p6.SetMulticastHopLimit(hopLimit), s.p6.SetHopLimit(hopLimit), s.p6.SetMulticastLoopback(loopback))
	} else {
		s.p4 = ipv4.NewPacketConn(s.uc)
		s.cm = s.p4.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true) == nil
		err = firstErr(s.p4.SetMulticastTTL(hopLimit), s.p4.SetTTL(hopLimit), s.p4.SetMulticastLoopback(loopback))
	}
	if err != nil {
		_ = s.uc.Close()
		return nil, fmt.Errorf("setting multicast options: %w", err)
	}
	return s, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// readFrom reads one datagram into b. dst is its destination address and
// ifIndex the interface it arrived on, when the platform reports them.
func (s *socket) readFrom(b []byte) (n int, src netip.AddrPort, dst netip.Addr, ifIndex int, err error) {
	if !s.cm {
		n, src, err = s.uc.ReadFromUDPAddrPort(b)
		return n, unmap(src), netip.Addr{}, 0, err
	}
	var from net.Addr
	if s.v6 {
		var cm *ipv6.ControlMessage
		n, cm, from, err = s.p6.ReadFrom(b)
		if cm != nil {
			dst, _ = netip.AddrFromSlice(cm.Dst)
			ifIndex = cm.IfIndex
		}
	} else {
		var cm *ipv4.ControlMessage
		n, cm, from, err = s.p4.ReadFrom(b)
		if cm != nil {
			dst, _ = netip.AddrFromSlice(cm.Dst)
			dst = dst.Unmap()
			ifIndex = cm.IfIndex
		}
	}
	if ua, ok := from.(*net.UDPAddr); ok {
		src = unmap(ua.AddrPort())
	}
	return n, src, dst, ifIndex, err
}

func (s *socket) writeTo(b []byte, dst netip.AddrPort) error {
	_, err := s.uc.WriteToUDPAddrPort(b, dst)
	return err
}

// multicast sends b to group on interface ifi.
func (s *socket) multicast(b []byte, ifi *net.Interface, group netip.AddrPort) error {
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
	return s.writeTo(b, group)
}

func (s *socket) join(ifi *net.Interface, group netip.Addr) error {
	ga := &net.UDPAddr{IP: group.AsSlice()}
	if s.v6 {
		return s.p6.JoinGroup(ifi, ga)
	}
	return s.p4.JoinGroup(ifi, ga)
}

func (s *socket) leave(ifi *net.Interface, group netip.Addr) error {
	ga := &net.UDPAddr{IP: group.AsSlice()}
	if s.v6 {
		return s.p6.LeaveGroup(ifi, ga)
	}
	return s.p4.LeaveGroup(ifi, ga)
}

func (s *socket) localAddr() netip.AddrPort {
	return unmap(s.uc.LocalAddr().(*net.UDPAddr).AddrPort())
}

func (s *socket) close() error { return s.uc.Close() }

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
