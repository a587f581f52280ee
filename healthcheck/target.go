package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"time"
)

// ErrInvalidTarget reports a target URI a prober cannot reach: no host, no
// port where one is needed, a port out of range. It says nothing about the
// peer's health, only that its announcement was unusable.
var ErrInvalidTarget = errors.New("healthcheck: invalid target")

// DefaultTimeout bounds a probe whose config leaves Timeout zero.
const DefaultTimeout = 2 * time.Second

// timeoutOrDefault returns d, or DefaultTimeout when d is zero or negative.
func timeoutOrDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTimeout
	}
	return d
}

// hostPort returns the "host:port" a tcp or udp prober dials for target. An
// IPv6 host keeps its zone: "[fe80::1%eth0]:7". The port is required.
func hostPort(target *url.URL) (string, error) {
	if target == nil {
		return "", fmt.Errorf("%w: nil URI", ErrInvalidTarget)
	}
	if target.Opaque != "" {
		return "", fmt.Errorf("%w: %q has no host", ErrInvalidTarget, target.Redacted())
	}
	host, port := target.Hostname(), target.Port()
	if host == "" {
		return "", fmt.Errorf("%w: %q has no host", ErrInvalidTarget, target.Redacted())
	}
	if !validHost(host) {
		return "", fmt.Errorf("%w: %q: bad host %q", ErrInvalidTarget, target.Redacted(), host)
	}
	if port == "" {
		return "", fmt.Errorf("%w: %q has no port", ErrInvalidTarget, target.Redacted())
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("%w: %q: bad port %q", ErrInvalidTarget, target.Redacted(), port)
	}
	return net.JoinHostPort(host, port), nil
}

// validHost reports whether host is an IP address (an IPv6 one possibly
// with a zone of unreserved characters, as interface names are) or a DNS
// name: letters, digits, '-', '_' and '.', at most 253 bytes.
func validHost(host string) bool {
	if a, err := netip.ParseAddr(host); err == nil {
		return safeZone(a.Zone())
	}
	if len(host) > 253 {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}

// deadlineFor returns when a probe that starts now with timeout d must end:
// now+d, or the context's deadline if that is sooner.
func deadlineFor(ctx context.Context, d time.Duration) time.Time {
	deadline := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		return dl
	}
	return deadline
}

// ctxErr returns ctx.Err(), or context.DeadlineExceeded when the context's
// deadline has passed but its timer has not fired yet: an I/O deadline
// copied from the context can expire a moment before the context does.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// probeError describes a failed step of a probe of addr. The result wraps
// the caller's context error when ctx is done, and os.ErrDeadlineExceeded
// when the probe ran out of time, so that callers can tell these apart with
// errors.Is whatever layer (dialer, socket, HTTP client) noticed first.
func probeError(ctx context.Context, step, addr string, err error) error {
	if cerr := ctxErr(ctx); cerr != nil {
		if errors.Is(err, cerr) {
			return fmt.Errorf("healthcheck: %s %s: %w", step, addr, err)
		}
		return fmt.Errorf("healthcheck: %s %s: %w (%w)", step, addr, cerr, err)
	}
	if isTimeout(err) && !errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("healthcheck: %s %s: %w (%w)", step, addr, os.ErrDeadlineExceeded, err)
	}
	return fmt.Errorf("healthcheck: %s %s: %w", step, addr, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// uriFor builds the URI a server advertises for its bound address ap. An
// IPv6 host is bracketed. Its zone is kept when it is made of characters
// that survive url.Parse(u.String()) unchanged (every usual interface
// name); otherwise it is replaced by the interface's index, which always
// survives, found with zoneIndex; failing that the zone is dropped.
func uriFor(scheme string, ap netip.AddrPort, path string, zoneIndex func(string) (int, bool)) *url.URL {
	addr := ap.Addr().Unmap()
	if zone := addr.Zone(); zone != "" && !safeZone(zone) {
		if i, ok := zoneIndex(zone); ok {
			addr = addr.WithZone(strconv.Itoa(i))
		} else {
			addr = addr.WithZone("")
		}
	}
	return &url.URL{
		Scheme: scheme,
		Host:   netip.AddrPortFrom(addr, ap.Port()).String(),
		Path:   path,
	}
}

// safeZone reports whether zone is made only of RFC 3986 unreserved
// characters, which a URI carries without escaping.
func safeZone(zone string) bool {
	for i := 0; i < len(zone); i++ {
		c := zone[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// interfaceIndex looks an interface up by name.
func interfaceIndex(name string) (int, bool) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, false
	}
	return ifi.Index, true
}

// addrPortOf returns the address of a bound socket as a netip.AddrPort, an
// IPv4 address in its 4-byte form.
func addrPortOf(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
