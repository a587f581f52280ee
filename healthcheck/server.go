package healthcheck

import (
	"errors"
	"fmt"
	"net"
	"strings"
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
	// DefaultMaxConns (64).
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
	DefaultMaxConns    = 64
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

// Validate reports every problem with c at once. Zero fields are fine:
// they stand for their defaults.
func (c ServerConfig) Validate() error {
	var errs []error
	if c.ReadTimeout < 0 {
		errs = append(errs, fmt.Errorf("healthcheck: ReadTimeout %v is negative", c.ReadTimeout))
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("healthcheck: MaxConns %d is negative", c.MaxConns))
	}
	if c.Path != "" && !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("healthcheck: Path %q does not begin with /", c.Path))
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
