package healthcheck

import (
	"context"
	"time"
)

// attemptKey is the type of the context keys below.
type attemptKey int

const (
	noRetryKey attemptKey = iota + 1
	gateKey
)

// WithoutRetry returns a context that asks the probers of this package for
// one connection attempt (TCP) or one datagram (UDP) only: no hedged second
// attempt beside a slow first, whatever their Retry. The kernel's own
// retransmissions of that one attempt still happen within the timeout. A
// caller uses it for a target it has no reason to trust yet, such as a peer
// heard once and never probed: a forged announcement then costs its victim
// one attempt.
func WithoutRetry(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRetryKey, true)
}

// WithAttemptGate returns a context that makes the probers of this package
// call gate before each attempt beyond the first (a hedged TCP connection,
// a UDP datagram sent again), and skip that attempt when gate returns
// false. A caller that budgets connection attempts (a rate limit) gives
// each extra attempt a token this way. gate may be called from any
// goroutine, concurrently.
func WithAttemptGate(ctx context.Context, gate func() bool) context.Context {
	return context.WithValue(ctx, gateKey, gate)
}

// retryFor is the interval between attempts a probe with ctx may use:
// every, or none when ctx asks for one attempt only.
func retryFor(ctx context.Context, every time.Duration) time.Duration {
	if v, _ := ctx.Value(noRetryKey).(bool); v {
		return -1
	}
	return every
}

// mayAttempt reports whether ctx's gate, if any, allows one more attempt.
func mayAttempt(ctx context.Context) bool {
	gate, _ := ctx.Value(gateKey).(func() bool)
	return gate == nil || gate()
}
