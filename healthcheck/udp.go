package healthcheck

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"
)

// UDPConfig configures a UDPProber.
type UDPConfig struct {
	// Timeout bounds one probe: the wait for the reply datagram. When the
	// probe's context has an earlier deadline, that one wins. Zero or
	// negative means DefaultTimeout (2s).
	Timeout time.Duration
	// Retry is how long to wait for the reply before sending the probe
	// datagram again (the same connected socket, so a late reply to an
	// earlier datagram still counts). Zero means DefaultRetry (250ms);
	// negative means the datagram is sent once.
	Retry time.Duration
}

// UDPProber probes over UDP: it sends one datagram holding the byte 0x00
// to the target's host and port and waits for one datagram back. The peer
// is healthy if that datagram is the single byte 0x00. While no reply has
// come, the datagram is sent again every Retry, so that one lost datagram
// does not fail the probe.
//
// The socket is connected to the target, so only the target's datagrams
// are read, and an ICMP port-unreachable (nothing listening) fails the
// probe at once with a "connection refused" error (syscall.ECONNREFUSED).
// The URI scheme is not checked; the URI must carry a port.
type UDPProber struct {
	timeout, retry time.Duration
}

var _ Prober = (*UDPProber)(nil)

// NewUDPProber returns a UDPProber configured by cfg.
func NewUDPProber(cfg UDPConfig) *UDPProber {
	return &UDPProber{timeout: timeoutOrDefault(cfg.Timeout), retry: retryOrDefault(cfg.Retry)}
}

// udpReplyBuf is large enough to see that a reply is longer than one byte.
const udpReplyBuf = 64

// Probe runs one probe of target, for example udp://192.0.2.1:7. It returns
// nil for a one-byte 0x00 reply; an error wrapping ErrUnhealthy for any
// other reply; an error wrapping os.ErrDeadlineExceeded when Timeout runs
// out; an error wrapping ctx.Err() when ctx is done first.
func (p *UDPProber) Probe(ctx context.Context, target *url.URL) error {
	addr, err := hostPort(target)
	if err != nil {
		return err
	}
	if err := ctxErr(ctx); err != nil {
		return fmt.Errorf("healthcheck: probe %s: %w", addr, err)
	}
	deadline := deadlineFor(ctx, p.timeout)
	d := net.Dialer{Deadline: deadline}
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return probeError(ctx, "connect to", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var reply [udpReplyBuf]byte
	retry := retryFor(ctx, p.retry)
	for sent := 0; ; sent++ {
		wait := deadline
		if retry > 0 {
			if next := time.Now().Add(retry); next.Before(deadline) {
				wait = next
			}
		}
		step, err := "send to", error(nil)
		if sent == 0 || mayAttempt(ctx) { // else wait for a reply to the datagrams sent
			_, err = conn.Write([]byte{0x00})
		}
		if err == nil {
			if err = conn.SetReadDeadline(wait); err != nil {
				return probeError(ctx, "probe", addr, err)
			}
			var n int
			step = "receive from"
			if n, err = conn.Read(reply[:]); err == nil {
				return checkReply(addr, reply[:n])
			}
		}
		// A refusal is final; a timeout, or a host unreachable while a
		// lossy link fails neighbour discovery, may pass: try again until
		// the deadline.
		if settled(err) || retry <= 0 || ctxErr(ctx) != nil || !time.Now().Before(deadline) {
			return probeError(ctx, step, addr, err)
		}
		if !isTimeout(err) {
			t := time.NewTimer(time.Until(wait))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return probeError(ctx, step, addr, err)
			}
		}
	}
}

// checkReply judges the reply payload b that addr sent: healthy is exactly
// one byte, 0x00.
func checkReply(addr string, b []byte) error {
	if len(b) != 1 || b[0] != 0x00 {
		return fmt.Errorf("%w: %s replied % x, want 00", ErrUnhealthy, addr, b[:min(len(b), 8)])
	}
	return nil
}
