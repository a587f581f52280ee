package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"
)

// TCPConfig configures a TCPProber.
type TCPConfig struct {
	// Timeout bounds one probe: connect, write and read together. When the
	// probe's context has an earlier deadline, that one wins. Zero or
	// negative means DefaultTimeout (2s).
	Timeout time.Duration
}

// TCPProber probes with the original pir protocol: connect to the target's
// host and port, write the byte 0x00, read exactly one byte. The peer is
// healthy if that byte is 0x00. The URI scheme is not checked, so the
// prober can be registered under any name; the URI must carry a port.
type TCPProber struct {
	timeout time.Duration
}

var _ Prober = (*TCPProber)(nil)

// NewTCPProber returns a TCPProber configured by cfg.
func NewTCPProber(cfg TCPConfig) *TCPProber {
	return &TCPProber{timeout: timeoutOrDefault(cfg.Timeout)}
}

// Probe runs one probe of target, for example tcp://192.0.2.1:7 or
// tcp://[fe80::1%25eth0]:7. It returns nil for a 0x00 reply; an error
// wrapping ErrUnhealthy for any other byte or a connection closed without a
// reply; an error wrapping os.ErrDeadlineExceeded when Timeout runs out;
// an error wrapping ctx.Err() when ctx is done first.
func (p *TCPProber) Probe(ctx context.Context, target *url.URL) error {
	addr, err := hostPort(target)
	if err != nil {
		return err
	}
	if err := ctxErr(ctx); err != nil {
		return fmt.Errorf("healthcheck: probe %s: %w", addr, err)
	}
	deadline := deadlineFor(ctx, p.timeout)
	d := net.Dialer{Deadline: deadline}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return probeError(ctx, "connect to", addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return probeError(ctx, "probe", addr, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := conn.Write([]byte{0x00}); err != nil {
		return probeError(ctx, "write to", addr, err)
	}
	var reply [1]byte
	if _, err := io.ReadFull(conn, reply[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: %s closed the connection without a reply: %w", ErrUnhealthy, addr, err)
		}
		return probeError(ctx, "read from", addr, err)
	}
	return checkReply(addr, reply[:])
}
