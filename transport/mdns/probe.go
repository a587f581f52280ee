package mdns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/transport"
)

// ErrNotFound reports a probe of a tcpconnect:// or mdns:// target that is
// not the health URI of a service the Conn found over mDNS and still has
// in its cache: an announcement that came some other way (a forged one on
// a multicast group, say) gets no probe that always passes.
var ErrNotFound = errors.New("mdns: not a service found over mDNS")

var _ healthcheck.SchemeProvider = (*Conn)(nil)

// Probers returns the probers of the health schemes of services of other
// software (see the package doc): SchemeAdvertised, the health URI the
// Conn gives them, which passes while the service is advertised, and
// SchemeTCPConnect, a TCP connect (healthcheck.TCPConnectProber) to the
// address of such a service, for an application that checks whether it
// listens (never the Group's view of its membership). Both first check
// that the target is a service the Conn found and still has in its
// cache, and fail with an error wrapping ErrNotFound otherwise, without
// touching the network. A discovery.Group over the Conn whose Config.Prober
// is nil registers them (healthcheck.SchemeProvider); an application with
// its own healthcheck.Registry registers them itself:
//
//	for scheme, p := range conn.Probers() {
//		registry.Register(scheme, p)
//	}
//
// They fail with an error wrapping transport.ErrClosed once the Conn is
// closed.
func (c *Conn) Probers() map[string]healthcheck.Prober {
	return map[string]healthcheck.Prober{
		SchemeTCPConnect: &foundProber{c: c, scheme: SchemeTCPConnect, then: healthcheck.NewTCPConnectProber(healthcheck.TCPConfig{})},
		SchemeAdvertised: &foundProber{c: c, scheme: SchemeAdvertised},
	}
}

// foundProber probes the health URIs of services the Conn found: it asks
// the engine whether the target is one, then probes it with then, if any.
type foundProber struct {
	c      *Conn
	scheme string
	then   healthcheck.Prober // nil: being found is being healthy
}

func (p *foundProber) Probe(ctx context.Context, target *url.URL) error {
	if target == nil {
		return fmt.Errorf("%w: nil URI", healthcheck.ErrInvalidTarget)
	}
	if !strings.EqualFold(target.Scheme, p.scheme) {
		return fmt.Errorf("%w: %q is not %s://", healthcheck.ErrUnsupportedScheme, target.Scheme, p.scheme)
	}
	ap, err := netip.ParseAddrPort(target.Host)
	if err != nil {
		return fmt.Errorf("%w: %s: host is not ADDRESS:PORT: %v", healthcheck.ErrInvalidTarget, target.Redacted(), err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mdns: probe %s: %w", target.Redacted(), err)
	}
	if err := p.c.doCtx(ctx, command{kind: cmdFound, target: foundKey{scheme: p.scheme, addr: ap}}); err != nil {
		return fmt.Errorf("mdns: probe %s: %w", target.Redacted(), err)
	}
	if p.then == nil {
		return nil
	}
	return p.then.Probe(ctx, target)
}

// foundKey is the health URI the Conn gave a foreign instance: its scheme
// and address (without zone).
type foundKey struct {
	scheme string
	addr   netip.AddrPort
}

// keyOf returns the foundKey of a synthesized health URI, or false.
func keyOf(uri string) (foundKey, bool) {
	u, err := url.Parse(uri)
	if err != nil {
		return foundKey{}, false
	}
	ap, err := netip.ParseAddrPort(u.Host)
	if err != nil {
		return foundKey{}, false
	}
	return foundKey{scheme: strings.ToLower(u.Scheme), addr: netip.AddrPortFrom(ap.Addr().WithZone(""), ap.Port())}, true
}

// found reports whether k names a foreign instance that was delivered,
// has said no goodbye (or one still being checked), and whose SRV record
// is alive: its health URI
// (SchemeAdvertised), or its address for SchemeTCPConnect.
func (e *engine) found(k foundKey, now time.Time) bool {
	k.addr = netip.AddrPortFrom(k.addr.Addr().WithZone(""), k.addr.Port())
	for _, inst := range e.insts {
		if inst.id == "" || inst.gone || inst.other || inst.health.addr != k.addr {
			continue
		}
		if k.scheme != SchemeTCPConnect && inst.health != k {
			continue
		}
		// While a goodbye is checked (see checkBye) the instance is still
		// advertised: a forged goodbye must not fail its probes meanwhile.
		if !inst.checkAt.IsZero() || e.cache.newest(rrKey{inst.key, typeSRV}, now) != nil {
			return true
		}
	}
	return false
}

// doCtx is do, also ending when ctx is done.
func (c *Conn) doCtx(ctx context.Context, cmd command) error {
	cmd.reply = make(chan error, 1)
	select {
	case c.cmds <- cmd:
	case <-c.done:
		return fmt.Errorf("mdns: %w", transport.ErrClosed)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-cmd.reply:
		return err
	case <-c.done:
		return fmt.Errorf("mdns: %w", transport.ErrClosed)
	case <-ctx.Done():
		return ctx.Err()
	}
}
