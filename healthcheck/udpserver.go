package healthcheck

import (
	"errors"
	"net"
	"time"
)

// UDPServer answers the probe that UDPProber sends: to a datagram holding
// the single byte 0x00 it replies with a datagram holding 0x00, when it is
// healthy. It ignores every other datagram. An unhealthy UDPServer reads
// probes and answers none.
//
// Its methods are safe for concurrent use. Close stops it for good.
type UDPServer struct {
	serverCore
	conn *net.UDPConn
}

// NewUDPServer returns a healthy UDPServer configured by cfg. Start makes
// it listen.
func NewUDPServer(cfg ServerConfig) *UDPServer {
	s := &UDPServer{}
	s.prepare("udp", cfg)
	return s
}

// Start binds addr, such as "127.0.0.1:0" or "[::1]:0", and serves in the
// background until Close. It fails if the config is invalid, the address
// cannot be bound, or the server was already started or closed.
func (s *UDPServer) Start(addr string) error { return s.start(addr, s.bind) }

// bind is what Start hands to serverCore.start.
func (s *UDPServer) bind(addr string) (net.Addr, func(), error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, nil, err
	}
	conn := pc.(*net.UDPConn)
	s.conn = conn
	return conn.LocalAddr(), func() { s.readLoop(conn) }, nil
}

// Close closes the socket and waits for the server's goroutine. It may be
// called before Start, and more than once; every call returns once the
// server has stopped.
func (s *UDPServer) Close() error {
	return s.shutdown(func() error { return s.conn.Close() })
}

// udpProbeBuf is large enough to tell a one-byte probe from a longer
// datagram.
const udpProbeBuf = 64

func (s *UDPServer) readLoop(conn *net.UDPConn) {
	var (
		buf     [udpProbeBuf]byte
		backoff time.Duration
	)
	for {
		n, src, err := conn.ReadFromUDPAddrPort(buf[:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.failed(err)
			backoff = nextBackoff(backoff)
			s.log.Debug("read failed", "addr", s.addr, "error", err, "retry_in", backoff)
			if !s.wait(backoff) {
				return
			}
			continue
		}
		backoff = 0
		s.served()
		if !isProbe(buf[:n]) {
			s.log.Debug("datagram ignored: not a probe", "remote", src, "len", n)
			continue
		}
		if !s.healthy.Load() {
			continue
		}
		if err := conn.SetWriteDeadline(time.Now().Add(s.cfg.ReadTimeout)); err != nil {
			continue
		}
		if _, err := conn.WriteToUDPAddrPort([]byte{0x00}, src); err != nil {
			s.log.Debug("reply not sent", "remote", src, "error", err)
		}
	}
}

// isProbe reports whether the payload b is a probe: exactly one byte, 0x00.
func isProbe(b []byte) bool { return len(b) == 1 && b[0] == 0x00 }
