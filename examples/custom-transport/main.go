// Custom-transport plugs a transport of your own into pir: here, UDP
// unicast to a fixed list of peers, for networks that carry no multicast
// (many cloud VPCs). Any type with Send, SendTo, Receive and Close is a
// transport.Transport; transporttest.Run checks it keeps the contract (see
// main_test.go, which runs the suite against this one).
//
//	go run ./examples/custom-transport
//
// The program starts three members on 127.0.0.1, each told the others'
// addresses, and prints what the first one sees.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/transport"
)

// Static sends "multicasts" as one unicast datagram to each listed peer.
type Static struct {
	conn *net.UDPConn

	mu    sync.Mutex
	peers []netip.AddrPort
}

var _ transport.Transport = (*Static)(nil)

// ListenStatic opens a UDP socket on addr (e.g. "127.0.0.1:0").
func ListenStatic(addr string) (*Static, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, err
	}
	return &Static{conn: c}, nil
}

// Addr is where the others send to.
func (s *Static) Addr() netip.AddrPort { return s.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// SetPeers replaces the list of peers Send reaches.
func (s *Static) SetPeers(peers []netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peers = append([]netip.AddrPort(nil), peers...)
}

func (s *Static) Send(b []byte) error {
	if len(b) > transport.MaxDatagram {
		return fmt.Errorf("%w: %d bytes", transport.ErrTooLarge, len(b))
	}
	s.mu.Lock()
	peers := s.peers
	s.mu.Unlock()
	var errs []error
	for _, p := range peers {
		if err := s.SendTo(b, p); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 && len(errs) == len(peers) {
		return errors.Join(errs...)
	}
	return nil
}

func (s *Static) SendTo(b []byte, dst netip.AddrPort) error {
	if len(b) > transport.MaxDatagram {
		return fmt.Errorf("%w: %d bytes", transport.ErrTooLarge, len(b))
	}
	_, err := s.conn.WriteToUDPAddrPort(b, dst)
	return wrap(err)
}

func (s *Static) Receive(buf []byte) (transport.Packet, error) {
	// Read one byte more than asked, so that a datagram too large for buf
	// is seen, not silently cut.
	big := make([]byte, len(buf)+1)
	n, src, err := s.conn.ReadFromUDPAddrPort(big)
	if err != nil {
		return transport.Packet{}, wrap(err)
	}
	if n > len(buf) {
		return transport.Packet{Src: src}, transport.ErrTruncated
	}
	copy(buf, big[:n])
	return transport.Packet{N: n, Src: src}, nil
}

func (s *Static) Close() error {
	if err := s.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

func wrap(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%w: %v", transport.ErrClosed, err)
	}
	return err
}

func main() {
	var trs []*Static
	var addrs []netip.AddrPort
	for range 3 {
		s, err := ListenStatic("127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		trs, addrs = append(trs, s), append(addrs, s.Addr())
	}
	hc := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	if err := hc.Start("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer hc.Close()

	var groups []*discovery.Group
	for i, tr := range trs {
		tr.SetPeers(addrs)
		g, err := discovery.Join(context.Background(), discovery.Config{
			// A transport of your own names the wire format: pipe, the
			// original pir's (or implement transport.DefaultCodec).
			Name: "static", Transport: tr, Codec: pipe.Codec{},
			Self: discovery.Peer{ID: fmt.Sprintf("member-%d", i+1), HealthURI: hc.URI()},
		})
		if err != nil {
			log.Fatal(err)
		}
		defer g.Close()
		groups = append(groups, g)
	}
	both := make(chan struct{})
	joined := 0
	groups[0].AddListener(func(e discovery.Event) bool {
		if joined++; joined == 2 {
			close(both)
			return false
		}
		return true
	})
	select {
	case <-both:
	case <-time.After(5 * time.Second):
		log.Fatal("member-1 did not see both others")
	}
	for _, m := range groups[0].Members() {
		fmt.Println("member-1 sees", m.ID)
	}
}
