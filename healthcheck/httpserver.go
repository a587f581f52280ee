package healthcheck

import (
	"errors"
	"net"
	"net/http"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// HTTPServer serves HealthHandler on ServerConfig.Path over plain HTTP, for
// HTTPProber. While healthy it answers GET and HEAD with 200 "ok", while
// unhealthy with 503; other paths get 404, other methods 405. SetHealthy
// also drives every handler that Handler returned.
//
// It counts its connections as the TCPServer does (see ServerConfig): a
// connection it refuses is reset as soon as it is accepted, one that sends
// no byte of its request within FirstByteTimeout is closed, and an idle
// kept-alive connection is closed after FirstByteTimeout too.
//
// Its methods are safe for concurrent use. Close stops it for good.
type HTTPServer struct {
	serverCore // its wg counts the Serve goroutine
	// connState, when set (by tests), also sees every connection state
	// change.
	connState func(net.Conn, http.ConnState)

	srv   *http.Server
	conns sync.WaitGroup // one count per connection http.Server serves
}

// NewHTTPServer returns a healthy HTTPServer configured by cfg. Start makes
// it listen.
func NewHTTPServer(cfg ServerConfig) *HTTPServer {
	s := &HTTPServer{}
	s.prepare("http", cfg)
	return s
}

// Handler returns the server's health handler (see HealthHandler), which
// follows SetHealthy. An application that has its own HTTP server mounts
// it there; it needs no Start.
func (s *HTTPServer) Handler() http.Handler { return HealthHandler(s.healthy.Load) }

// Start listens on addr, such as "127.0.0.1:0" or "[::1]:0", and serves in
// the background until Close. It fails if the config is invalid, the
// address cannot be bound, or the server was already started or closed.
func (s *HTTPServer) Start(addr string) error { return s.start(addr, s.bind) }

// bind is what Start hands to serverCore.start.
func (s *HTTPServer) bind(addr string) (net.Addr, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	s.path = s.cfg.Path
	mux := http.NewServeMux()
	mux.Handle(s.cfg.Path, s.Handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: s.cfg.ReadTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.ReadTimeout,
		IdleTimeout:       s.cfg.FirstByteTimeout,
		MaxHeaderBytes:    4 << 10,
		ErrorLog:          s.log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
		ConnState:         s.trackConn,
	}
	s.srv = srv
	return ln.Addr(), func() { s.serve(srv, &admitListener{Listener: ln, s: &s.serverCore}) }, nil
}

// admitListener hands http.Server only the connections that
// serverCore.admit lets in, each wrapped so that closing it frees its
// place; it resets the others at once.
type admitListener struct {
	net.Listener
	s *serverCore
}

func (l *admitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if t, ok := l.s.admit(c); ok {
			return t, nil
		}
		closeWithReset(c)
	}
}

func (s *HTTPServer) serve(srv *http.Server, ln net.Listener) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("health-check server stopped", "protocol", s.protocol, "addr", s.addr, "error", err)
	}
}

// trackConn counts the connections http.Server serves, so that Close can
// wait for their goroutines. http.Server reports StateNew from its accept
// loop, before it starts the connection's goroutine, and StateClosed (or
// StateHijacked) from that goroutine as it ends.
func (s *HTTPServer) trackConn(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		s.conns.Add(1)
	case http.StateClosed, http.StateHijacked:
		s.conns.Done()
	}
	if s.connState != nil {
		s.connState(c, st)
	}
}

// Stats returns a snapshot of the server's connection counters.
func (s *HTTPServer) Stats() ServerStats { return s.stats() }

// Close stops the listener, closes every connection and waits for every
// goroutine that serves them. It may be called before Start, and more than
// once; every call returns once the server has stopped.
func (s *HTTPServer) Close() error {
	// shutdown waits for the Serve goroutine first: once it has returned,
	// http.Server starts no more connections, so the count below only goes
	// down.
	err := s.shutdown(func() error {
		s.closeAll()
		return s.srv.Close()
	})
	s.conns.Wait()
	return err
}
