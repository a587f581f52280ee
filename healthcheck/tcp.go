package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"time"
)

// TCPConfig configures a TCPProber.
type TCPConfig struct {
	// Timeout bounds one probe: connect, write and read together. When the
	// probe's context has an earlier deadline, that one wins. Zero or
	// negative means DefaultTimeout (2s).
	Timeout time.Duration
	// Retry is how long one attempt at the probe (connect, 0x00 each way)
	// may go unanswered before another starts beside it, on a connection of
	// its own (the first keeps going; the first to succeed wins). On a
	// lossy LAN a lost SYN or byte would otherwise cost the kernel's 1 s
	// retransmission, half of the default timeout. A refusal or an
	// unhealthy reply ends the probe at once. Zero means DefaultRetry
	// (250ms); negative means one attempt only.
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
	return hedge(ctx, deadlineFor(ctx, p.timeout), p.retry, func(ctx context.Context) error {
		return exchange(ctx, addr)
	})
}

// exchange is one attempt at the pir probe: connect, write 0x00, read one
// byte. ctx bounds it.
func exchange(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return probeError(ctx, "connect to", addr, err)
	}
	defer abort(conn)
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

// abort closes a probe's connection with a reset rather than a FIN: the
// probe has nothing more to say or hear. Neither side then keeps a socket
// in TIME_WAIT for it (the server, which closes first, would keep one for a
// minute per probe it answered), and the probe is 9 packets, not 10.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// hedge runs try until the deadline, starting another try beside the
// running ones every `every` (never, if every <= 0), at most six in all,
// while none has succeeded. The first success wins. An answer that settles
// the matter (a refusal, an unhealthy reply) ends it at once; a try that
// timed out or found the host unreachable leaves the others going. Every try has ended when hedge
// returns. On a lossy link one lost packet then costs a quarter second,
// not the kernel's one-second retransmission, nor the whole probe.
//
// A parent context made by WithoutRetry gets one try only; one made by
// WithAttemptGate asks its gate before each try after the first, and a
// try the gate refuses is not started (the next tick asks again).
func hedge(parent context.Context, deadline time.Time, every time.Duration, try func(context.Context) error) error {
	ctx, cancel := context.WithDeadline(parent, deadline)
	defer cancel()
	err := hedged(ctx, cancel, retryFor(parent, every), try)
	if err != nil && parent.Err() == nil && isTimeout(err) && !errors.Is(err, os.ErrDeadlineExceeded) {
		// Our own deadline, not the caller's: say so as the contract does.
		err = fmt.Errorf("%w (%w)", err, os.ErrDeadlineExceeded)
	}
	return err
}

func hedged(ctx context.Context, cancel context.CancelFunc, every time.Duration, try func(context.Context) error) error {
	// At most 6 tries: enough to ride out a few lost packets within the
	// default 2 s, few enough that a member probed by many others at once
	// does not run out of connections.
	const maxTries = 6
	results := make(chan error, maxTries)
	running, started := 0, 0
	start := func() {
		running++
		started++
		go func() { results <- try(ctx) }()
	}
	// finish cancels the tries still running and waits for them; any of
	// them that succeeded meanwhile still counts.
	finish := func(err error) error {
		cancel()
		ok := false
		for ; running > 0; running-- {
			e := <-results
			ok = ok || e == nil
			if err == nil {
				err = e
			}
		}
		if ok {
			return nil
		}
		return err
	}
	start()
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	var last error
	for {
		if running == 0 && (every <= 0 || started >= maxTries) {
			return last
		}
		select {
		case err := <-results:
			running--
			last = err
			if err == nil {
				cancel()
				for ; running > 0; running-- {
					<-results
				}
				return nil
			}
			if settled(err) {
				return finish(err)
			}
		case <-tick:
			if started < maxTries && mayAttempt(ctx) {
				start()
			}
		case <-ctx.Done():
			return finish(last)
		}
	}
}

// settled reports whether a try's error answers the probe: a refused
// connection (nothing listens: the member is gone) or an unhealthy reply.
// Anything else (a timeout, a host or network unreachable while a lossy
// link fails neighbour discovery) may go away on the next try.
func settled(err error) bool {
	return errors.Is(err, ErrUnhealthy) || errors.Is(err, syscall.ECONNREFUSED)
}
