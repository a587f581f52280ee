package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TCPServer answers the pir probe that TCPProber sends: on each accepted
// connection it reads one byte and, if that byte is 0x00 and the server is
// healthy, writes 0x00 back; then it closes the connection, whatever it
// read. One probe per connection.
//
// Its methods are safe for concurrent use. Close stops it for good.
type TCPServer struct {
	cfg     ServerConfig
	log     hclog.Logger
	healthy atomic.Bool

	mu    sync.Mutex
	state state
	ln    net.Listener
	addr  netip.AddrPort
	conns map[net.Conn]struct{}
	done  chan struct{} // closed by Close
	wg    sync.WaitGroup
}

// NewTCPServer returns a healthy TCPServer configured by cfg. Start makes
// it listen.
func NewTCPServer(cfg ServerConfig) *TCPServer {
	s := &TCPServer{
		cfg:   cfg,
		conns: make(map[net.Conn]struct{}),
		done:  make(chan struct{}),
	}
	s.healthy.Store(true)
	return s
}

// Start listens on addr, such as "127.0.0.1:0" or "[::1]:0", and serves in
// the background until Close. It fails if the config is invalid, the
// address cannot be bound, or the server was already started or closed.
func (s *TCPServer) Start(addr string) error {
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
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return fmt.Errorf("healthcheck: start TCP server: %w", err)
	}
	s.ln = ln
	s.addr = addrPortOf(ln.Addr())
	s.state = stateStarted
	s.wg.Add(1)
	go s.acceptLoop(ln)
	s.log.Info("health-check server listening", "protocol", "tcp", "addr", s.addr)
	return nil
}

// Addr returns the address the server is bound to, or the zero AddrPort
// before Start.
func (s *TCPServer) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URI returns the URI to advertise, tcp://host:port, built from Addr. It
// is nil before Start. A server bound to a wildcard address (0.0.0.0, ::)
// has that address as its host: the advertiser substitutes its own.
func (s *TCPServer) URI() *url.URL {
	ap := s.Addr()
	if !ap.IsValid() {
		return nil
	}
	return uriFor("tcp", ap, "", interfaceIndex)
}

// SetHealthy says whether the server answers probes as healthy. An
// unhealthy TCPServer still accepts connections, but closes each one
// without a reply. A new server is healthy.
func (s *TCPServer) SetHealthy(healthy bool) { s.healthy.Store(healthy) }

// Healthy reports what SetHealthy last set.
func (s *TCPServer) Healthy() bool { return s.healthy.Load() }

// Close stops the listener, closes every open connection and waits for
// every goroutine the server started. It may be called before Start, and
// more than once; every call returns once the server has stopped.
func (s *TCPServer) Close() error {
	s.mu.Lock()
	var err error
	if s.state != stateClosed {
		if s.state == stateStarted {
			err = s.ln.Close()
			for c := range s.conns {
				_ = c.Close()
			}
			s.log.Info("health-check server closed", "protocol", "tcp", "addr", s.addr)
		}
		s.state = stateClosed
		close(s.done)
	}
	s.mu.Unlock()
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("healthcheck: close TCP server: %w", err)
	}
	return nil
}

func (s *TCPServer) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = nextBackoff(backoff)
			s.log.Warn("accept failed", "addr", s.addr, "error", err, "retry_in", backoff)
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
		if !s.track(conn) {
			_ = conn.Close()
			continue
		}
		go s.serve(conn)
	}
}

// track registers conn and counts its goroutine, or reports false if the
// server is closing or at MaxConns.
func (s *TCPServer) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateStarted {
		return false
	}
	if len(s.conns) >= s.cfg.MaxConns {
		s.log.Debug("connection refused: too many open", "remote", conn.RemoteAddr(), "max_conns", s.cfg.MaxConns)
		return false
	}
	s.conns[conn] = struct{}{}
	s.wg.Add(1)
	return true
}

// serve answers the one probe of conn and closes it.
func (s *TCPServer) serve(conn net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		_ = conn.Close()
	}()
	if err := conn.SetDeadline(time.Now().Add(s.cfg.ReadTimeout)); err != nil {
		return
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		s.log.Debug("probe not received", "remote", conn.RemoteAddr(), "error", err)
		return
	}
	if !isProbe(b[:]) {
		s.log.Debug("bad probe byte", "remote", conn.RemoteAddr(), "byte", b[0])
		return
	}
	if !s.healthy.Load() {
		return
	}
	if _, err := conn.Write([]byte{0x00}); err != nil {
		s.log.Debug("reply not sent", "remote", conn.RemoteAddr(), "error", err)
	}
}
