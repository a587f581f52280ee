package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/netutil"
)

// HTTPServer serves HealthHandler on ServerConfig.Path over plain HTTP, for
// HTTPProber. While healthy it answers GET and HEAD with 200 "ok", while
// unhealthy with 503; other paths get 404, other methods 405.
//
// Its methods are safe for concurrent use. Close stops it for good.
type HTTPServer struct {
	cfg     ServerConfig
	log     hclog.Logger
	healthy atomic.Bool
	// connState, when set (by tests), also sees every connection state
	// change.
	connState func(net.Conn, http.ConnState)

	mu    sync.Mutex
	state state
	srv   *http.Server
	addr  netip.AddrPort
	wg    sync.WaitGroup // the Serve goroutine
	conns sync.WaitGroup // one count per connection http.Server serves
}

// NewHTTPServer returns a healthy HTTPServer configured by cfg. Start makes
// it listen.
func NewHTTPServer(cfg ServerConfig) *HTTPServer {
	s := &HTTPServer{cfg: cfg}
	s.healthy.Store(true)
	return s
}

// Handler returns the server's health handler (see HealthHandler), which
// follows SetHealthy. An application that has its own HTTP server mounts
// it there; it needs no Start.
func (s *HTTPServer) Handler() http.Handler { return HealthHandler(s.healthy.Load) }

// Start listens on addr, such as "127.0.0.1:0" or "[::1]:0", and serves in
// the background until Close. It fails if the config is invalid, the
// address cannot be bound, or the server was already started or closed.
func (s *HTTPServer) Start(addr string) error {
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
		return fmt.Errorf("healthcheck: start HTTP server: %w", err)
	}
	s.addr = addrPortOf(ln.Addr())

	mux := http.NewServeMux()
	mux.Handle(s.cfg.Path, s.Handler())
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: s.cfg.ReadTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.ReadTimeout,
		IdleTimeout:       s.cfg.ReadTimeout,
		MaxHeaderBytes:    4 << 10,
		ErrorLog:          s.log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
		ConnState:         s.trackConn,
	}
	s.state = stateStarted
	s.wg.Add(1)
	go s.serve(s.srv, netutil.LimitListener(ln, s.cfg.MaxConns))
	s.log.Info("health-check server listening", "protocol", "http", "addr", s.addr, "path", s.cfg.Path)
	return nil
}

func (s *HTTPServer) serve(srv *http.Server, ln net.Listener) {
	defer s.wg.Done()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("health-check server stopped", "protocol", "http", "addr", s.addr, "error", err)
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

// Addr returns the address the server is bound to, or the zero AddrPort
// before Start.
func (s *HTTPServer) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URI returns the URI to advertise, http://host:port/path, built from Addr.
// It is nil before Start.
func (s *HTTPServer) URI() *url.URL {
	s.mu.Lock()
	ap, path := s.addr, s.cfg.Path
	s.mu.Unlock()
	if !ap.IsValid() {
		return nil
	}
	return uriFor("http", ap, path, interfaceIndex)
}

// SetHealthy says whether the server answers probes with 200 (true) or 503
// (false). It also drives every handler that Handler returned. A new server
// is healthy.
func (s *HTTPServer) SetHealthy(healthy bool) { s.healthy.Store(healthy) }

// Healthy reports what SetHealthy last set.
func (s *HTTPServer) Healthy() bool { return s.healthy.Load() }

// Close stops the listener, closes every connection and waits for every
// goroutine that serves them. It may be called before Start, and more than
// once; every call returns once the server has stopped.
func (s *HTTPServer) Close() error {
	s.mu.Lock()
	var err error
	if s.state != stateClosed {
		if s.state == stateStarted {
			err = s.srv.Close()
			s.log.Info("health-check server closed", "protocol", "http", "addr", s.addr)
		}
		s.state = stateClosed
	}
	s.mu.Unlock()
	// The Serve goroutine first: once it has returned, http.Server starts
	// no more connections, so the count below only goes down.
	s.wg.Wait()
	s.conns.Wait()
	if err != nil {
		return fmt.Errorf("healthcheck: close HTTP server: %w", err)
	}
	return nil
}
