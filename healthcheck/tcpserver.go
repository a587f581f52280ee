package healthcheck

import (
	"errors"
	"io"
	"net"
	"time"
)

// TCPServer answers the pir probe that TCPProber sends: on each accepted
// connection it reads one byte and, if that byte is 0x00 and the server is
// healthy, writes 0x00 back; then it closes the connection, whatever it
// read. One probe per connection. An unhealthy TCPServer still accepts
// connections, but closes each one without a reply.
//
// Its methods are safe for concurrent use. Close stops it for good.
type TCPServer struct {
	serverCore
	ln    net.Listener
	conns map[net.Conn]struct{} // guarded by mu
}

// NewTCPServer returns a healthy TCPServer configured by cfg. Start makes
// it listen.
func NewTCPServer(cfg ServerConfig) *TCPServer {
	s := &TCPServer{conns: make(map[net.Conn]struct{})}
	s.prepare("tcp", cfg)
	return s
}

// Start listens on addr, such as "127.0.0.1:0" or "[::1]:0", and serves in
// the background until Close. It fails if the config is invalid, the
// address cannot be bound, or the server was already started or closed.
func (s *TCPServer) Start(addr string) error { return s.start(addr, s.bind) }

// bind is what Start hands to serverCore.start.
func (s *TCPServer) bind(addr string) (net.Addr, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	s.ln = ln
	return ln.Addr(), func() { s.acceptLoop(ln) }, nil
}

// Close stops the listener, closes every open connection and waits for
// every goroutine the server started. It may be called before Start, and
// more than once; every call returns once the server has stopped.
func (s *TCPServer) Close() error {
	return s.shutdown(func() error {
		err := s.ln.Close()
		for c := range s.conns {
			_ = c.Close()
		}
		return err
	})
}

func (s *TCPServer) acceptLoop(ln net.Listener) {
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = nextBackoff(backoff)
			s.log.Warn("accept failed", "addr", s.addr, "error", err, "retry_in", backoff)
			if !s.wait(backoff) {
				return
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
