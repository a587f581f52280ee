package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// UDPServer answers the probe that UDPProber sends: to a datagram holding
// the single byte 0x00 it replies with a datagram holding 0x00, when it is
// healthy. It ignores every other datagram, and stays silent while
// unhealthy.
//
// Its methods are safe for concurrent use. Close stops it for good.
type UDPServer struct {
	cfg     ServerConfig
	log     hclog.Logger
	healthy atomic.Bool

	mu    sync.Mutex
	state state
	conn  *net.UDPConn
	addr  netip.AddrPort
	done  chan struct{} // closed by Close
	wg    sync.WaitGroup
}

// NewUDPServer returns a healthy UDPServer configured by cfg. Start makes
// it listen.
func NewUDPServer(cfg ServerConfig) *UDPServer {
	s := &UDPServer{cfg: cfg, done: make(chan struct{})}
	s.healthy.Store(true)
	return s
}

// Start binds addr, such as "127.0.0.1:0" or "[::1]:0", and serves in the
// background until Close. It fails if the config is invalid, the address
// cannot be bound, or the server was already started or closed.
func (s *UDPServer) Start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.state.canStart(); err != nil {
		return err
	}
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	s.cfg = s.cfg.withDefaults()
	s.log = s.cfg.Logger

	var lc net.ListenConfig
	pc, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return fmt.Errorf("healthcheck: start UDP server: %w", err)
	}
	s.conn = pc.(*net.UDPConn)
	s.addr = addrPortOf(pc.LocalAddr())
	s.state = stateStarted
	s.wg.Add(1)
	go s.readLoop(s.conn)
	s.log.Info("health-check server listening", "protocol", "udp", "addr", s.addr)
	return nil
}

// Addr returns the address the server is bound to, or the zero AddrPort
// before Start.
func (s *UDPServer) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URI returns the URI to advertise, udp://host:port, built from Addr. It
// is nil before Start.
func (s *UDPServer) URI() *url.URL {
	ap := s.Addr()
	if !ap.IsValid() {
		return nil
	}
	return uriFor("udp", ap, "", interfaceIndex)
}

// SetHealthy says whether the server answers probes. An unhealthy
// UDPServer reads probes and answers none. A new server is healthy.
func (s *UDPServer) SetHealthy(healthy bool) { s.healthy.Store(healthy) }

// Healthy reports what SetHealthy last set.
func (s *UDPServer) Healthy() bool { return s.healthy.Load() }

// Close closes the socket and waits for the server's goroutine. It may be
// called before Start, and more than once; every call returns once the
// server has stopped.
func (s *UDPServer) Close() error {
	s.mu.Lock()
	var err error
	if s.state != stateClosed {
		if s.state == stateStarted {
			err = s.conn.Close()
			s.log.Info("health-check server closed", "protocol", "udp", "addr", s.addr)
		}
		s.state = stateClosed
		close(s.done)
	}
	s.mu.Unlock()
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("healthcheck: close UDP server: %w", err)
	}
	return nil
}

// udpProbeBuf is large enough to tell a one-byte probe from a longer
// datagram.
const udpProbeBuf = 64

func (s *UDPServer) readLoop(conn *net.UDPConn) {
	defer s.wg.Done()
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
			backoff = nextBackoff(backoff)
			s.log.Debug("read failed", "addr", s.addr, "error", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-s.done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		backoff = 0
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
