package healthcheck

import (
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
// A connection that sends nothing within ServerConfig.FirstByteTimeout, or
// that the server refuses (see ServerConfig), is reset rather than closed:
// a prober reads that as "try again", not as an unhealthy reply.
//
// Its methods are safe for concurrent use. Close stops it for good.
type TCPServer struct {
	serverCore
	ln net.Listener
}

// NewTCPServer returns a healthy TCPServer configured by cfg. Start makes
// it listen.
func NewTCPServer(cfg ServerConfig) *TCPServer {
	s := &TCPServer{}
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
	return ln.Addr(), func() { s.acceptLoop(ln, s.serve) }, nil
}

// Stats returns a snapshot of the server's connection counters.
func (s *TCPServer) Stats() ServerStats { return s.stats() }

// Close stops the listener, closes every open connection and waits for
// every goroutine the server started. It may be called before Start, and
// more than once; every call returns once the server has stopped.
func (s *TCPServer) Close() error {
	return s.shutdown(func() error {
		err := s.ln.Close()
		s.closeAll()
		return err
	})
}

// serve answers the one probe of c and closes it.
func (s *TCPServer) serve(c *conn) {
	abort := true // reset, rather than close, a connection that sent no probe
	defer func() {
		if abort {
			s.release(c)
			closeWithReset(c.Conn)
			return
		}
		_ = c.Close()
	}()
	if err := c.SetDeadline(time.Now().Add(s.cfg.ReadTimeout)); err != nil {
		return
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		s.log.Debug("probe not received", "remote", c.RemoteAddr(), "error", err)
		return
	}
	if !isProbe(b[:]) {
		s.log.Debug("bad probe byte", "remote", c.RemoteAddr(), "byte", b[0])
		return
	}
	abort = false
	if !s.healthy.Load() {
		return
	}
	if _, err := c.Write([]byte{0x00}); err != nil {
		s.log.Debug("reply not sent", "remote", c.RemoteAddr(), "error", err)
	}
}
