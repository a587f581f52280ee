package discovery

import (
	"math"
	"net/netip"
	"time"
)

// bucket is a token bucket: rate tokens a second, at most burst saved up.
type bucket struct {
	tokens float64
	last   time.Time
}

// take spends one token if there is one.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	b.refill(now, rate, burst)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *bucket) refill(now time.Time, rate, burst float64) {
	if b.last.IsZero() {
		b.tokens, b.last = burst, now
		return
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(burst, b.tokens+el*rate)
		b.last = now
	}
}

// minWait is the shortest wait for a token: a bucket short of one by a
// rounding error must not make a task due again at once, and again (the
// owner's task loop would run it for ever at the same instant).
const minWait = time.Millisecond

// wait is how long until take can succeed, at least minWait when it
// cannot now.
func (b *bucket) wait(rate float64) time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	return max(time.Duration(math.Ceil((1-b.tokens)/rate*float64(time.Second))), minWait)
}

// maxSources bounds the per-source buckets of new peers. Past it the table
// starts afresh: every source gets its burst again, which costs an attacker
// who sprays source addresses nothing it did not have (each new address
// gets a burst anyway), while the caps on pending peers and probes still
// hold.
const maxSources = 4096

// sourceLimiter limits how many new peers one source address may introduce.
type sourceLimiter struct {
	rate, burst float64 // rate < 0: no limit
	buckets     map[netip.Addr]*bucket
}

func (l *sourceLimiter) allow(src netip.Addr, now time.Time) bool {
	if l.rate < 0 {
		return true
	}
	b := l.buckets[src]
	if b == nil {
		if len(l.buckets) >= maxSources {
			clear(l.buckets)
		}
		b = &bucket{}
		l.buckets[src] = b
	}
	return b.take(now, l.rate, l.burst)
}
