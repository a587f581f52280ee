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
	// Retry is how long one connection attempt may go unanswered before
	// another starts beside it (the first keeps going; the first to
	// connect wins). On a lossy LAN a lost SYN would otherwise cost the
	// kernel's 1 s retransmission, half of the default timeout. A refused
	// or unreachable answer ends the probe at once. Zero means
	// DefaultRetry (250ms); negative means one attempt only.
	Retry time.Duration
}

// DefaultRetry is the interval between repeated connection attempts (TCP)
// or datagrams (UDP) within one probe.
const DefaultRetry = 250 * time.Millisecond

func retryOrDefault(d time.Duration) time.Duration {
	if d == 0 {
		return DefaultRetry
	}
	return d
}

// TCPProber probes with the original pir protocol: connect to the target's
// host and port, write the byte 0x00, read exactly one byte. The peer is
// healthy if that byte is 0x00. The URI scheme is not checked, so the
// prober can be registered under any name; the URI must carry a port.
type TCPProber struct {
	timeout, retry time.Duration
}

var _ Prober = (*TCPProber)(nil)

// NewTCPProber returns a TCPProber configured by cfg.
func NewTCPProber(cfg TCPConfig) *TCPProber {
	return &TCPProber{timeout: timeoutOrDefault(cfg.Timeout), retry: retryOrDefault(cfg.Retry)}
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
	conn, err := p.dial(ctx, addr, deadline)
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

// dial connects to addr by the deadline, starting a new attempt beside the
// others every p.retry while none has answered. It returns the first
// connection made, or the first error answered (refused, unreachable), or
// the deadline's. Every attempt has ended when it returns.
func (p *TCPProber) dial(ctx context.Context, addr string, deadline time.Time) (net.Conn, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	type result struct {
		conn net.Conn
		err  error
	}
	results := make(chan result, 16)
	running := 0
	attempt := func() {
		running++
		go func() {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			results <- result{c, err}
		}()
	}
	// finish cancels the attempts still running and waits for them,
	// closing any that connected after all.
	finish := func() {
		cancel()
		for ; running > 0; running-- {
			if r := <-results; r.conn != nil {
				r.conn.Close()
			}
		}
	}
	attempt()
	var tick <-chan time.Time
	if p.retry > 0 {
		t := time.NewTicker(p.retry)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case r := <-results:
			running--
			finish()
			return r.conn, r.err
		case <-tick:
			if running < cap(results) {
				attempt()
			}
		}
	}
}
