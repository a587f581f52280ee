package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
)

// Prober checks the health of one peer.
//
// Probe returns nil when the endpoint at target answered as a healthy peer
// should, and an error saying what went wrong otherwise. It returns when ctx
// is done at the latest, with an error wrapping ctx.Err(). A Prober is safe
// for concurrent use and keeps nothing between calls that a caller must
// release.
type Prober interface {
	Probe(ctx context.Context, target *url.URL) error
}

// SchemeSupporter is an optional interface of probers that handle only
// some URI schemes. A Group drops announcements whose health URI a prober
// that implements it does not support, rather than probe them in vain.
type SchemeSupporter interface {
	Supports(scheme string) bool
}

// SchemeProvider is an optional interface of transports that find peers
// whose health URIs no built-in prober serves, and that provide the
// probers for them: transport/mdns gives services of other software
// tcpconnect:// and mdns:// URIs, and probes only those it found. A
// discovery.Group whose Config.Prober is nil registers the probers its
// transport provides, by scheme, beside NewRegistry's. Probers returns a
// new map each call; the probers in it are safe for concurrent use and
// refuse targets that are not the transport's own.
type SchemeProvider interface {
	Probers() map[string]Prober
}

// ProberFunc adapts an ordinary function to a Prober.
type ProberFunc func(ctx context.Context, target *url.URL) error

// Probe calls f(ctx, target).
func (f ProberFunc) Probe(ctx context.Context, target *url.URL) error { return f(ctx, target) }

var (
	// ErrUnsupportedScheme reports a target whose scheme no prober handles.
	ErrUnsupportedScheme = errors.New("healthcheck: unsupported scheme")
	// ErrUnhealthy reports an endpoint that answered, but not as a healthy
	// peer: a wrong reply byte, a non-2xx status.
	ErrUnhealthy = errors.New("healthcheck: unhealthy reply")
)

// Registry is a Prober that picks a prober by the target's URI scheme.
// Applications extend it with Register. It is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	probers map[string]Prober
}

// NewRegistry returns a Registry with the built-in probers: tcp (the pir
// protocol), udp and http. Each of them checks that the peer answers as a
// pir member would. It holds no prober for https, which needs the
// application's TLS configuration: register an HTTPProber with a DialTLS
// for it. It holds no prober for tcpconnect:// (a bare TCP
// connect) or mdns:// (no probe at all): served to every peer, they would
// let anyone who can send an announcement join without answering a probe.
// Those schemes are the transport/mdns Conn's, for the services it finds,
// and come from its Probers (SchemeProvider).
func NewRegistry() *Registry {
	r := &Registry{probers: make(map[string]Prober)}
	r.Register("tcp", NewTCPProber(TCPConfig{}))
	r.Register("udp", NewUDPProber(UDPConfig{}))
	r.Register("http", NewHTTPProber(HTTPConfig{}))
	return r
}

// Register makes p the prober for scheme, replacing any earlier one.
// Schemes are case-insensitive.
func (r *Registry) Register(scheme string, p Prober) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.probers[strings.ToLower(scheme)] = p
}

// Lookup returns the prober registered for scheme.
func (r *Registry) Lookup(scheme string) (Prober, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.probers[strings.ToLower(scheme)]
	return p, ok
}

// Supports reports whether a prober is registered for scheme.
func (r *Registry) Supports(scheme string) bool {
	_, ok := r.Lookup(scheme)
	return ok
}

// Probe probes target with the prober registered for its scheme.
func (r *Registry) Probe(ctx context.Context, target *url.URL) error {
	if target == nil {
		return fmt.Errorf("%w: nil URI", ErrInvalidTarget)
	}
	p, ok := r.Lookup(target.Scheme)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnsupportedScheme, target.Scheme)
	}
	return p.Probe(ctx, target)
}

var (
	_ Prober          = (*Registry)(nil)
	_ SchemeSupporter = (*Registry)(nil)
)
