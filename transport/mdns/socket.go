package mdns

import (
	"errors"
	"net"
	"net/netip"

	"github.com/pirlan/pir/internal/mcast"
)

// hopLimit is the IP TTL of everything a Conn sends (RFC 6762 §11).
const hopLimit = 255

// socket is one UDP socket of one family (internal/mcast), with the
// options mDNS needs. Its methods are safe for concurrent use.
type socket struct {
	*mcast.Socket

	// joined is the socket's membership of the mDNS group, for the socket
	// bound to the mDNS port; the first rescan makes it, under the Conn's
	// rescanMu.
	joined *mcast.Membership
}

// listen opens a UDP socket of one family bound to the wildcard address
// and port. shared lets it share the port with other mDNS software and
// other Conns (SO_REUSEADDR, SO_REUSEPORT). Everything it sends has TTL
// 255, and its multicast is looped back unless loopback is false.
func listen(v6 bool, port uint16, shared, loopback bool) (*socket, error) {
	s, err := mcast.Listen(v6, port, shared)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(s.SetMulticastOptions(hopLimit, loopback), s.SetUnicastHopLimit(hopLimit)); err != nil {
		_ = s.Close()
		return nil, err
	}
	return &socket{Socket: s}, nil
}

// The methods below keep the names the rest of the package calls.

// readFrom reads one datagram into b. dst is its destination address and
// ifIndex the interface it arrived on, when the platform reports them.
func (s *socket) readFrom(b []byte) (n int, src netip.AddrPort, dst netip.Addr, ifIndex int, err error) {
	return s.ReadFrom(b)
}

func (s *socket) writeTo(b []byte, dst netip.AddrPort) error { return s.WriteTo(b, dst) }

// multicast sends b to group on interface ifi.
func (s *socket) multicast(b []byte, ifi *net.Interface, group netip.AddrPort) error {
	return s.Multicast(b, ifi, group)
}

func (s *socket) join(ifi *net.Interface, group netip.Addr) error { return s.JoinGroup(ifi, group) }

func (s *socket) localAddr() netip.AddrPort { return s.LocalAddr() }

func (s *socket) close() error { return s.Close() }
