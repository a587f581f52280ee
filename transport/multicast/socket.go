package multicast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/pirlan/pir/internal/sockopt"
)

// socket is one UDP socket of either family, with the multicast options
// the Conn uses. Its methods are safe for concurrent use, except that
// setMulticastInterface and the write that depends on it must be
// serialised by the caller.
type socket interface {
	// readFrom reads one datagram into b. dst is the datagram's
	// destination address and ifIndex the interface it arrived on, when
	// the platform reports them (zero values otherwise).
	readFrom(b []byte) (n int, src netip.AddrPort, dst netip.Addr, ifIndex int, err error)
	writeTo(b []byte, dst netip.AddrPort) error
	// writeFrom sends b to dst from the source address src out of
	// interface ifIndex, with a control message; it fails where control
	// messages are not supported.
	writeFrom(b []byte, dst netip.AddrPort, src netip.Addr, ifIndex int) error
	setMulticastInterface(ifi *net.Interface) error
	joinGroup(ifi *net.Interface, group netip.Addr) error
	leaveGroup(ifi *net.Interface, group netip.Addr) error
	localAddr() netip.AddrPort
	close() error
}

// listen opens a UDP socket of network ("udp4" or "udp6") bound to the
// wildcard address and port. shared sets the options that let several
// sockets, in this process or others, bind the same port and all receive
// its multicast.
func listen(network string, port uint16, shared bool) (socket, error) {
	var lc net.ListenConfig
	if shared {
		lc.Control = sockopt.SharedPort
	}
	host := "0.0.0.0"
	if network == "udp6" {
		host = "::"
	}
	pc, err := lc.ListenPacket(context.Background(), network, net.JoinHostPort(host, fmt.Sprint(port)))
	if err != nil {
		return nil, err
	}
	uc := pc.(*net.UDPConn)
	if network == "udp6" {
		p := ipv6.NewPacketConn(uc)
		// Unsupported on some platforms (Windows): IfIndex is then 0 and
		// datagrams are not filtered by destination.
		cm := p.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true) == nil
		return &socket6{uc: uc, p: p, cm: cm}, nil
	}
	p := ipv4.NewPacketConn(uc)
	cm := p.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true) == nil
	return &socket4{uc: uc, p: p, cm: cm}, nil
}

// setMulticastOptions sets the hop limit and loopback of multicast sent
// from s.
func setMulticastOptions(s socket, hopLimit int, loopback bool) error {
	switch s := s.(type) {
	case *socket4:
		if err := s.p.SetMulticastTTL(hopLimit); err != nil {
			return fmt.Errorf("setting the multicast TTL: %w", err)
		}
		if err := s.p.SetMulticastLoopback(loopback); err != nil {
			return fmt.Errorf("setting multicast loopback: %w", err)
		}
	case *socket6:
		if err := s.p.SetMulticastHopLimit(hopLimit); err != nil {
			return fmt.Errorf("setting the multicast hop limit: %w", err)
		}
		if err := s.p.SetMulticastLoopback(loopback); err != nil {
			return fmt.Errorf("setting multicast loopback: %w", err)
		}
	}
	return nil
}

type socket4 struct {
	uc *net.UDPConn
	p  *ipv4.PacketConn
	cm bool // control messages on
}

func (s *socket4) readFrom(b []byte) (int, netip.AddrPort, netip.Addr, int, error) {
	if !s.cm {
		n, src, err := s.uc.ReadFromUDPAddrPort(b)
		return n, unmap(src), netip.Addr{}, 0, err
	}
	n, cm, src, err := s.p.ReadFrom(b)
	if err != nil {
		return 0, netip.AddrPort{}, netip.Addr{}, 0, err
	}
	var from netip.AddrPort
	if ua, ok := src.(*net.UDPAddr); ok {
		from = unmap(ua.AddrPort())
	}
	var dst netip.Addr
	var ifIndex int
	if cm != nil {
		dst, _ = netip.AddrFromSlice(cm.Dst)
		dst = dst.Unmap()
		ifIndex = cm.IfIndex
	}
	return n, from, dst, ifIndex, nil
}

func (s *socket4) writeTo(b []byte, dst netip.AddrPort) error {
	_, err := s.uc.WriteToUDPAddrPort(b, dst)
	return err
}

func (s *socket4) writeFrom(b []byte, dst netip.AddrPort, src netip.Addr, ifIndex int) error {
	if !s.cm {
		return errNoControl
	}
	_, err := s.p.WriteTo(b, &ipv4.ControlMessage{Src: src.AsSlice(), IfIndex: ifIndex}, net.UDPAddrFromAddrPort(dst))
	return err
}

// errNoControl reports that the platform takes no control messages.
var errNoControl = errors.New("control messages not supported")

func (s *socket4) setMulticastInterface(ifi *net.Interface) error {
	return s.p.SetMulticastInterface(ifi)
}

func (s *socket4) joinGroup(ifi *net.Interface, group netip.Addr) error {
	return s.p.JoinGroup(ifi, &net.UDPAddr{IP: group.AsSlice()})
}

func (s *socket4) leaveGroup(ifi *net.Interface, group netip.Addr) error {
	return s.p.LeaveGroup(ifi, &net.UDPAddr{IP: group.AsSlice()})
}

func (s *socket4) localAddr() netip.AddrPort {
	return unmap(s.uc.LocalAddr().(*net.UDPAddr).AddrPort())
}

func (s *socket4) close() error { return s.uc.Close() }

type socket6 struct {
	uc *net.UDPConn
	p  *ipv6.PacketConn
	cm bool // control messages on
}

func (s *socket6) readFrom(b []byte) (int, netip.AddrPort, netip.Addr, int, error) {
	if !s.cm {
		n, src, err := s.uc.ReadFromUDPAddrPort(b)
		return n, src, netip.Addr{}, 0, err
	}
	n, cm, src, err := s.p.ReadFrom(b)
	if err != nil {
		return 0, netip.AddrPort{}, netip.Addr{}, 0, err
	}
	var from netip.AddrPort
	if ua, ok := src.(*net.UDPAddr); ok {
		from = ua.AddrPort()
	}
	var dst netip.Addr
	var ifIndex int
	if cm != nil {
		dst, _ = netip.AddrFromSlice(cm.Dst)
		ifIndex = cm.IfIndex
	}
	return n, from, dst, ifIndex, nil
}

func (s *socket6) writeTo(b []byte, dst netip.AddrPort) error {
	_, err := s.uc.WriteToUDPAddrPort(b, dst)
	return err
}

func (s *socket6) writeFrom(b []byte, dst netip.AddrPort, src netip.Addr, ifIndex int) error {
	if !s.cm {
		return errNoControl
	}
	_, err := s.p.WriteTo(b, &ipv6.ControlMessage{Src: src.AsSlice(), IfIndex: ifIndex}, net.UDPAddrFromAddrPort(dst))
	return err
}

func (s *socket6) setMulticastInterface(ifi *net.Interface) error {
	return s.p.SetMulticastInterface(ifi)
}

func (s *socket6) joinGroup(ifi *net.Interface, group netip.Addr) error {
	return s.p.JoinGroup(ifi, &net.UDPAddr{IP: group.AsSlice()})
}

func (s *socket6) leaveGroup(ifi *net.Interface, group netip.Addr) error {
	return s.p.LeaveGroup(ifi, &net.UDPAddr{IP: group.AsSlice()})
}

func (s *socket6) localAddr() netip.AddrPort { return s.uc.LocalAddr().(*net.UDPAddr).AddrPort() }

func (s *socket6) close() error { return s.uc.Close() }

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
