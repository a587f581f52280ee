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
//
// Any open port passes, so it proves only that something listens there:
// NewRegistry does not hold it. transport/mdns wraps it in a prober that
// first checks the target is a service it found (SchemeProvider); register
// it yourself only for peers you trust to name their own address.
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
