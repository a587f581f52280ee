package healthcheck

import (
	"cmp"
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
//
// The TCPServer and HTTPServer count their open connections and keep them
// for the members that need them (see "Held connections" in the package
// doc): a source address that Known does not know may hold at most
// MaxConnsPerSource of them, all such sources together at most MaxConns
// less KnownReserve, and each must send its first byte within
// FirstByteTimeout. When the server is full, a known source's connection
// takes the place of the oldest unknown one.
type ServerConfig struct {
	// ReadTimeout bounds how long a connection may take to send its probe
	// (TCP: the one byte; HTTP: the whole request) and to take the reply.
	// A connection that sends nothing is closed when it runs out, or
	// sooner (FirstByteTimeout). The UDPServer, which has no connections,
	// uses it only to bound the sending of a reply. Zero means
	// DefaultReadTimeout (2s).
	ReadTimeout time.Duration

	// FirstByteTimeout bounds how long a new connection may stay silent:
	// a connection whose first byte has not come by then is reset. A pir
	// prober sends its byte (an HTTP prober its request) as soon as it is
	// connected, so on a LAN the byte comes within a millisecond; the
	// default leaves room for a lost segment's retransmission (200 ms on
	// Linux) and a loaded machine. ReadTimeout still bounds the whole
	// exchange, and caps this. The UDPServer ignores it. Zero means
	// DefaultFirstByteTimeout (500ms); negative means no deadline of its
	// own (ReadTimeout alone).
	FirstByteTimeout time.Duration

	// MaxConns caps the connections open at once. The TCPServer and
	// HTTPServer reset a connection beyond the cap as soon as they accept
	// it, unless it comes from a known source (Known) and an unknown
	// source's connection can be closed in its place. The UDPServer
	// ignores it: it answers datagrams one by one. Zero means
	// DefaultMaxConns (256).
	MaxConns int

	// MaxConnsPerSource caps the connections open at once from one source
	// address that Known does not report as known; a connection beyond it
	// is reset as soon as it is accepted. Known sources have no cap of
	// their own besides MaxConns: a host that runs several members, each
	// probing with a few connections at once, needs more. The UDPServer
	// ignores it. Zero means DefaultMaxConnsPerSource (16): members that
	// share a host share its address, and at a join each of them probes at
	// once, so a tighter cap resets real probes (internal/stress's
	// amplification tests, ten members on one host, fail with 4). Negative
	// means no cap.
	MaxConnsPerSource int

	// KnownReserve is how many of MaxConns are kept for known sources:
	// unknown ones together may hold at most MaxConns - KnownReserve. It
	// is used only when Known is set (nobody could use it otherwise), and
	// must be less than MaxConns. The UDPServer ignores it. Zero means
	// MaxConns/4 (64 by default); negative means none.
	KnownReserve int

	// Known reports whether a source address belongs to a known member,
	// whose probes the server must keep answering while others hold
	// connections: typically func(a) { return group.Knows(a) } for the
	// discovery.Group the server answers for (the package doc shows how to
	// wire it, since the server starts before the Group). The TCPServer
	// and HTTPServer call it once for each connection they accept, from
	// their accept loop and holding no lock; it must be fast and safe for
	// concurrent use. The address has no zone and IPv4 is in its 4-byte
	// form. The UDPServer ignores it. Nil means nobody is known: every
	// source is capped and there is no reserve.
	Known func(netip.Addr) bool

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
	DefaultReadTimeout       = 2 * time.Second
	DefaultFirstByteTimeout  = 500 * time.Millisecond
	DefaultMaxConns          = 256
	DefaultMaxConnsPerSource = 16
	DefaultPath              = "/healthz"
)

// DefaultServerConfig returns a ServerConfig with every default filled in.
// Known stays nil, and KnownReserve is the share it would get
// (DefaultMaxConns/4).
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		ReadTimeout:       DefaultReadTimeout,
		FirstByteTimeout:  DefaultFirstByteTimeout,
		MaxConns:          DefaultMaxConns,
		MaxConnsPerSource: DefaultMaxConnsPerSource,
		KnownReserve:      DefaultMaxConns / 4,
		Path:              DefaultPath,
		Logger:            hclog.NewNullLogger(),
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
	if maxConns := cmp.Or(max(c.MaxConns, 0), DefaultMaxConns); c.KnownReserve >= maxConns {
		errs = append(errs, fmt.Errorf("healthcheck: KnownReserve %d is not less than MaxConns %d", c.KnownReserve, maxConns))
	}
	if c.Path != "" && !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("%w: Path %q does not begin with /", ErrInvalidConfig, c.Path))
	}
	return errors.Join(errs...)
}

// withDefaults returns a copy of c with its zero fields filled in, and
// the ones that mean "none" (a negative FirstByteTimeout, KnownReserve or
// MaxConnsPerSource) in the form the servers use: FirstByteTimeout at most
// ReadTimeout, KnownReserve 0 without Known, MaxConnsPerSource MaxConns.
func (c ServerConfig) withDefaults() ServerConfig {
	d := DefaultServerConfig()
	if c.ReadTimeout == 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.FirstByteTimeout == 0 {
		c.FirstByteTimeout = d.FirstByteTimeout
	}
	if c.FirstByteTimeout < 0 || c.FirstByteTimeout > c.ReadTimeout {
		c.FirstByteTimeout = c.ReadTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = d.MaxConns
	}
	if c.MaxConnsPerSource == 0 {
		c.MaxConnsPerSource = d.MaxConnsPerSource
	}
	if c.MaxConnsPerSource < 0 {
		c.MaxConnsPerSource = c.MaxConns
	}
	if c.KnownReserve == 0 {
		c.KnownReserve = c.MaxConns / 4
	}
	if c.KnownReserve < 0 || c.Known == nil {
		c.KnownReserve = 0
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
	// ErrServerNotStarted is returned by Check on a server not started.
	ErrServerNotStarted = errors.New("healthcheck: server not started")
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

	// fail is the socket's last failure (an Accept, or the UDPServer's
	// read) while none has succeeded since; nil while it serves. Check
	// reads it.
	fail atomic.Pointer[socketFailure]

	// The connections the TCPServer and HTTPServer count (see admit),
	// guarded by cmu, which may be taken while holding mu but not the
	// other way round: closeAll, called under mu, takes cmu, and so does
	// admit, called by the accept loop that Close waits for. Each map
	// holds at most MaxConns entries.
	cmu     sync.Mutex
	closing bool // set by closeAll: admit no more
	conns   map[*conn]struct{}
	sources map[netip.Addr]int // open connections per unknown source
	unknown int                // open connections from unknown sources
	counts  struct{ accepted, refused, evicted atomic.Uint64 }
}

// prepare readies a new server for protocol: healthy, not started.
func (s *serverCore) prepare(protocol string, cfg ServerConfig) {
	s.protocol = protocol
	s.cfg = cfg
	s.done = make(chan struct{})
	s.conns = make(map[*conn]struct{})
	s.sources = make(map[netip.Addr]int)
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

// Check answers in process what a probe of the server would, without a
// connection: nil while the server is started and healthy and its socket
// serves; an error wrapping ErrUnhealthy after SetHealthy(false);
// ErrServerNotStarted before Start and ErrServerClosed after Close; and an
// error with the cause while its socket fails: an Accept (or the
// UDPServer's read) failed within the last failWindow, out of file
// descriptors say, and none has succeeded since. A member that serves its
// own health checks itself with it (discovery.Config.SelfCheck), as pir
// join does.
func (s *serverCore) Check() error {
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	switch st {
	case stateNew:
		return ErrServerNotStarted
	case stateClosed:
		return ErrServerClosed
	}
	if f := s.fail.Load(); f != nil && time.Since(f.at) < failWindow {
		return fmt.Errorf("healthcheck: %s server failing: %w", strings.ToUpper(s.protocol), f.err)
	}
	if !s.healthy.Load() {
		return fmt.Errorf("%w: %s server set unhealthy", ErrUnhealthy, strings.ToUpper(s.protocol))
	}
	return nil
}

// failWindow is how long Check reports a failed Accept or read while none
// has succeeded since: twice the longest backoff, so that a socket failing
// on every try reads failing throughout, and one that recovered while no
// prober came (its next Accept waits, it cannot say it works) reads well
// again within 2 s.
const failWindow = 2 * acceptBackoffMax

// socketFailure is a failed Accept or read, and when.
type socketFailure struct {
	at  time.Time
	err error
}

// failed notes a failed Accept or read for Check; served notes one that
// succeeded.
func (s *serverCore) failed(err error) { s.fail.Store(&socketFailure{at: time.Now(), err: err}) }

func (s *serverCore) served() {
	if s.fail.Load() != nil {
		s.fail.Store(nil)
	}
}

// ServerStats counts what a TCPServer or HTTPServer did with the
// connections it accepted.
type ServerStats struct {
	// Accepted counts the connections served (taken into the count of
	// open connections).
	Accepted uint64
	// Refused counts the connections reset as soon as they were accepted:
	// their source had MaxConnsPerSource open, or the server had no room
	// for them.
	Refused uint64
	// Evicted counts the connections of unknown sources reset to make
	// room for a known source's.
	Evicted uint64
	// Open is the number of connections open now.
	Open int
}

// stats returns a snapshot of the server's connection counters.
func (s *serverCore) stats() ServerStats {
	s.cmu.Lock()
	open := len(s.conns)
	s.cmu.Unlock()
	return ServerStats{
		Accepted: s.counts.accepted.Load(),
		Refused:  s.counts.refused.Load(),
		Evicted:  s.counts.evicted.Load(),
		Open:     open,
	}
}

// conn is an open connection that the server counts: where it came from,
// whether that source is known, and when it came. It also holds back every
// read deadline to the first-byte deadline until the first byte has come,
// so that the server's own (longer) ReadTimeout deadline does not undo it.
type conn struct {
	net.Conn
	s     *serverCore
	src   netip.Addr
	known bool
	since time.Time
	first time.Time   // the first-byte deadline
	begun atomic.Bool // its first byte has come

	counted bool // still in s.conns; guarded by s.cmu

	dmu    sync.Mutex
	wanted time.Time // the read deadline the server last asked for; guarded by dmu
}

// admit decides whether the server serves c, a connection Accept just
// returned, and counts it if so. It refuses c when the server is closing; when c's source is unknown and already has MaxConnsPerSource
// connections open, or unknown sources together hold MaxConns -
// KnownReserve; and when the server is full and no unknown source's
// connection can give way to a known source's. Giving way means being
// reset: the oldest unknown connection whose first byte has not come, or
// else the oldest unknown one. A refused c is left to the caller to reset.
// An admitted c has its read deadline set to the first-byte deadline.
func (s *serverCore) admit(c net.Conn) (*conn, bool) {
	src := addrPortOf(c.RemoteAddr()).Addr().WithZone("")
	known := s.cfg.Known != nil && s.cfg.Known(src)
	now := time.Now()
	t := &conn{Conn: c, s: s, src: src, known: known, since: now, first: now.Add(s.cfg.FirstByteTimeout)}

	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.closing {
		return nil, false
	}
	var why string
	switch {
	case !known && s.sources[src] >= s.cfg.MaxConnsPerSource:
		why = "too many from this source"
	case !known && s.unknown >= s.cfg.MaxConns-s.cfg.KnownReserve:
		why = "no room for unknown sources"
	case len(s.conns) >= s.cfg.MaxConns:
		why = "too many open"
		if !known {
			break
		}
		if v := s.giveWayLocked(); v != nil {
			s.forgetLocked(v)
			closeWithReset(v.Conn)
			s.counts.evicted.Add(1)
			s.log.Debug("connection closed for a known source's", "remote", v.src, "known", src)
			why = ""
		}
	}
	if why != "" {
		s.counts.refused.Add(1)
		s.log.Debug("connection refused", "reason", why, "remote", c.RemoteAddr(), "known", known)
		return nil, false
	}
	if err := c.SetReadDeadline(t.first); err != nil {
		return nil, false
	}
	t.counted = true
	s.conns[t] = struct{}{}
	if !known {
		s.sources[src]++
		s.unknown++
	}
	s.counts.accepted.Add(1)
	return t, true
}

// giveWayLocked picks the connection that makes room for a known source's:
// the oldest unknown connection still waiting for its first byte, or else
// the oldest unknown one. It returns nil when every open connection is a
// known source's. s.cmu must be held; it scans at most MaxConns entries,
// only when the server is full.
func (s *serverCore) giveWayLocked() *conn {
	var idle, oldest *conn
	for c := range s.conns {
		if c.known {
			continue
		}
		if oldest == nil || c.since.Before(oldest.since) {
			oldest = c
		}
		if !c.begun.Load() && (idle == nil || c.since.Before(idle.since)) {
			idle = c
		}
	}
	if idle != nil {
		return idle
	}
	return oldest
}

// forgetLocked stops counting c. It is a no-op for a connection no longer
// counted. s.cmu must be held.
func (s *serverCore) forgetLocked(c *conn) {
	if !c.counted {
		return
	}
	c.counted = false
	delete(s.conns, c)
	if !c.known {
		if s.sources[c.src]--; s.sources[c.src] <= 0 {
			delete(s.sources, c.src)
		}
		s.unknown--
	}
}

// release stops counting c, once its server is done with it.
func (s *serverCore) release(c *conn) {
	s.cmu.Lock()
	s.forgetLocked(c)
	s.cmu.Unlock()
}

// closeAll closes every counted connection and makes admit refuse every
// later one, for Close.
func (s *serverCore) closeAll() {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.closing = true
	for c := range s.conns {
		_ = c.Conn.Close()
	}
}

// Read reads from the connection and, with its first byte, lifts the
// first-byte deadline: the read deadline is then the one last asked for.
func (c *conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.begun.Load() {
		c.dmu.Lock()
		if !c.begun.Load() {
			c.begun.Store(true)
			_ = c.Conn.SetReadDeadline(c.wanted)
		}
		c.dmu.Unlock()
	}
	return n, err
}

// SetReadDeadline sets the read deadline, no later than the first-byte
// deadline while the first byte has not come.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.wanted = t
	if !c.begun.Load() && (t.IsZero() || t.After(c.first)) {
		t = c.first
	}
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline sets the write deadline, and the read deadline as
// SetReadDeadline does.
func (c *conn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// CloseWrite shuts down the writing side of a TCP connection, as
// *net.TCPConn does: the HTTPServer does that before it closes a
// connection, so that the client reads the whole response rather than a
// reset.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// Close stops counting the connection and closes it.
func (c *conn) Close() error {
	c.s.release(c)
	return c.Conn.Close()
}

// closeWithReset closes c with a reset rather than a FIN: for a connection
// the server refuses or gives up on. A prober that reads a reset tries
// again (a refusal it would read as an unhealthy reply, which settles the
// probe), and the server keeps no TIME_WAIT socket for it.
func closeWithReset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// acceptLoop accepts connections on ln until it is closed, and runs serve
// for each one admitted (see track), in a goroutine of its own.
func (s *serverCore) acceptLoop(ln net.Listener, serve func(*conn)) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.failed(err)
			backoff = nextBackoff(backoff)
			s.log.Warn("accept failed", "addr", s.addr, "error", err, "retry_in", backoff)
			if !s.wait(backoff) {
				return
			}
			continue
		}
		backoff = 0
		s.served()
		if !s.track(c, serve) {
			closeWithReset(c)
		}
	}
}

// track admits c (see admit) and starts serve(c) in a goroutine counted by
// wg, or reports false.
func (s *serverCore) track(c net.Conn, serve func(*conn)) bool {
	t, ok := s.admit(c)
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateStarted {
		// Close came between admit and here, and has closed t already.
		s.release(t)
		return false
	}
	s.wg.Go(func() { serve(t) })
	return true
}

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
