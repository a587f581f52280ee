package healthcheck

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ServerConfig configures a TCPServer, UDPServer or HTTPServer.
type ServerConfig struct {
	// ReadTimeout bounds how long a connection may take to send its probe
	// (TCP: the one byte; HTTP: the whole request) and to take the reply.
	// A connection that sends nothing is closed when it runs out. The
	// UDPServer, which has no connections, uses it only to bound the
	// sending of a reply. Zero means DefaultReadTimeout (2s).
	ReadTimeout time.Duration

	// MaxConns caps the connections open at once. The TCPServer closes a
	// connection beyond the cap as soon as it accepts it; the HTTPServer
	// leaves it waiting in the listen queue until a connection closes. The
	// UDPServer ignores it: it answers datagrams one by one. Zero means
	// DefaultMaxConns (256).
	MaxConns int

	// Path is where the HTTPServer serves the health handler; it must
	// begin with "/". The other servers ignore it. Empty means DefaultPath
	// ("/healthz").
	Path string

	// Logger receives the server's log lines: start and stop at Info,
	// every rejected or failed connection at Debug. Nil means no logging.
	Logger hclog.Logger
}

// Defaults for the zero fields of a ServerConfig.
const (
	DefaultReadTimeout = 2 * time.Second
	DefaultMaxConns    = 256
	DefaultPath        = "/healthz"
)

// DefaultServerConfig returns a ServerConfig with every default filled in.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		ReadTimeout: DefaultReadTimeout,
		MaxConns:    DefaultMaxConns,
		Path:        DefaultPath,
		Logger:      hclog.NewNullLogger(),
	}
}

// ErrInvalidConfig wraps every problem ServerConfig.Validate reports.
var ErrInvalidConfig = errors.New("healthcheck: invalid config")

// Validate reports every problem with c at once, each wrapping
// ErrInvalidConfig. Zero fields are fine: they stand for their defaults.
func (c ServerConfig) Validate() error {
	var errs []error
	if c.ReadTimeout < 0 {
		errs = append(errs, fmt.Errorf("%w: ReadTimeout %v is negative", ErrInvalidConfig, c.ReadTimeout))
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxConns %d is negative", ErrInvalidConfig, c.MaxConns))
	}
	if c.Path != "" && !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("%w: Path %q does not begin with /", ErrInvalidConfig, c.Path))
	}
	return errors.Join(errs...)
}

// withDefaults returns a copy of c with its zero fields filled in.
func (c ServerConfig) withDefaults() ServerConfig {
	d := DefaultServerConfig()
	if c.ReadTimeout == 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = d.MaxConns
	}
	if c.Path == "" {
		c.Path = d.Path
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}

var (
	// ErrServerClosed is returned by Start on a server that was closed. It
	// wraps net.ErrClosed.
	ErrServerClosed = fmt.Errorf("healthcheck: server closed: %w", net.ErrClosed)
	// ErrServerStarted is returned by Start on a server already started.
	ErrServerStarted = errors.New("healthcheck: server already started")
)

// state is where a server is in its life: new, started, closed. It only
// moves forward.
type state int

const (
	stateNew state = iota
	stateStarted
	stateClosed
)

// canStart returns the error Start reports in state s, or nil.
func (s state) canStart() error {
	switch s {
	case stateStarted:
		return ErrServerStarted
	case stateClosed:
		return ErrServerClosed
	}
	return nil
}

// serverCore is what the TCPServer, UDPServer and HTTPServer share: the
// config, the health flag, the life-cycle state and the bound address. Each
// server embeds it, which gives it Addr, URI, SetHealthy and Healthy, and
// builds its Start and Close on start and shutdown.
type serverCore struct {
	protocol string // "tcp", "udp" or "http": the URI's scheme, and the logs'
	cfg      ServerConfig
	log      hclog.Logger
	healthy  atomic.Bool

	mu    sync.Mutex
	state state
	addr  netip.AddrPort
	path  string         // the URI's path: set by the HTTPServer, empty for the others
	done  chan struct{}  // closed by Close
	wg    sync.WaitGroup // the serving goroutine, and the TCPServer's connections
}

// prepare readies a new server for protocol: healthy, not started.
func (s *serverCore) prepare(protocol string, cfg ServerConfig) {
	s.protocol = protocol
	s.cfg = cfg
	s.done = make(chan struct{})
	s.healthy.Store(true)
}

// start is what every Start does. Holding mu throughout, it refuses a
// server already started or closed and an invalid config, fills in the
// defaults, and calls bind(addr). bind opens the server's socket and
// returns the bound address and the loop that serves it, which start runs
// in a goroutine counted by wg once the address and state are recorded.
// A bind error comes back wrapped.
func (s *serverCore) start(addr string, bind func(addr string) (net.Addr, func(), error)) error {
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
	bound, serve, err := bind(addr)
	if err != nil {
		return fmt.Errorf("healthcheck: start %s server: %w", strings.ToUpper(s.protocol), err)
	}
	s.addr = addrPortOf(bound)
	s.state = stateStarted
	s.wg.Go(serve)
	kv := []any{"protocol", s.protocol, "addr", s.addr}
	if s.path != "" {
		kv = append(kv, "path", s.path)
	}
	s.log.Info("health-check server listening", kv...)
	return nil
}

// shutdown is what every Close does. The first call moves the server to
// stateClosed and closes done; if the server was started it also calls
// stop, holding mu, to close the server's sockets. Every call then waits
// for the goroutines counted by wg. A stop error comes back wrapped.
func (s *serverCore) shutdown(stop func() error) error {
	s.mu.Lock()
	var err error
	if s.state != stateClosed {
		if s.state == stateStarted {
			err = stop()
			s.log.Info("health-check server closed", "protocol", s.protocol, "addr", s.addr)
		}
		s.state = stateClosed
		close(s.done)
	}
	s.mu.Unlock()
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("healthcheck: close %s server: %w", strings.ToUpper(s.protocol), err)
	}
	return nil
}

// Addr returns the address the server is bound to, or the zero AddrPort
// before Start.
func (s *serverCore) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URI returns the URI to advertise, built from Addr: tcp://host:port for a
// TCPServer, udp://host:port for a UDPServer, http://host:port/path for an
// HTTPServer. It is nil before Start. A server bound to a wildcard address
// (0.0.0.0, ::) has that address as its host: the advertiser substitutes
// its own.
func (s *serverCore) URI() *url.URL {
	s.mu.Lock()
	ap, path := s.addr, s.path
	s.mu.Unlock()
	if !ap.IsValid() {
		return nil
	}
	return uriFor(s.protocol, ap, path, interfaceIndex)
}

// SetHealthy says whether the server answers probes as a healthy peer
// (true) or as an unhealthy one (false): what that means for each server
// is in its type's doc. A new server is healthy.
func (s *serverCore) SetHealthy(healthy bool) { s.healthy.Store(healthy) }

// Healthy reports what SetHealthy last set.
func (s *serverCore) Healthy() bool { return s.healthy.Load() }

// wait waits d, the backoff after a failed Accept or read, and reports
// false if Close came first.
func (s *serverCore) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.done:
		return false
	case <-t.C:
		return true
	}
}

// Backoff bounds after a failed Accept (out of file descriptors, say): the
// accept loop waits, doubling the wait from the first to the last, rather
// than spinning.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return acceptBackoffMin
	}
	return min(2*d, acceptBackoffMax)
}
