package healthcheck

import (
	"context"
	"fmt"
	"net"
	"net/url"
)

// TCPConnectProber probes services that speak no pir protocol, such as
// those transport/mdns finds for other software: a target
// tcpconnect://HOST:PORT is healthy when a TCP connection to HOST:PORT
// succeeds. Nothing is written; the connection is closed at once. Like
// TCPProber, it starts a second attempt beside the first every Retry.
type TCPConnectProber struct {
	tcp *TCPProber
}

var _ Prober = (*TCPConnectProber)(nil)

// NewTCPConnectProber returns a TCPConnectProber configured by cfg.
func NewTCPConnectProber(cfg TCPConfig) *TCPConnectProber {
	return &TCPConnectProber{tcp: NewTCPProber(cfg)}
}

// Probe connects to target's host and port. It returns nil when the
// connection is made; errors as TCPProber's otherwise.
func (p *TCPConnectProber) Probe(ctx context.Context, target *url.URL) error {
	addr, err := hostPort(target)
	if err != nil {
		return err
	}
	if err := ctxErr(ctx); err != nil {
		return fmt.Errorf("healthcheck: probe %s: %w", addr, err)
	}
	return hedge(ctx, deadlineFor(ctx, p.tcp.timeout), p.tcp.retry, func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return probeError(ctx, "connect to", addr, err)
		}
		return conn.Close()
	})
}

// AdvertisedProber is the prober of mdns://HOST:PORT, the health URI
// transport/mdns gives services of other software that cannot be probed
// (_udp ones): it is always healthy. Such a member's membership ends with
// its mDNS goodbye, or when its records expire.
type AdvertisedProber struct{}

var _ Prober = AdvertisedProber{}

// Probe returns nil, or ctx's error when ctx is done.
func (AdvertisedProber) Probe(ctx context.Context, target *url.URL) error {
	if err := ctxErr(ctx); err != nil {
		return fmt.Errorf("healthcheck: probe %s: %w", target.Redacted(), err)
	}
	return nil
}
