package discovery

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A bucket short of a token by a rounding error says to wait, not to try
// again at once: a wait of zero made the owner's task loop run the same
// task again and again at the same instant, for ever.
func TestBucketWaitIsNeverZero(t *testing.T) {
	now := time.Now()
	for _, short := range []float64{1e-13, 1e-8, 0.5, 1} {
		b := bucket{tokens: 1 - short, last: now}
		require.False(t, b.take(now, 200, 64), "short by %g", short)
		w := b.wait(200)
		assert.GreaterOrEqual(t, w, minWait, "short by %g", short)
		assert.True(t, b.take(now.Add(w), 200, 64), "a token after the wait, short by %g", short)
	}
}

// The probe-slot task: with the probe bucket short of a token by a
// rounding error and a probe waiting, runDue returns. CI hung ten minutes
// in TestFlood (internal/stress) on this: the owner ran the slot task for
// ever, so nothing drained its inbox.
func TestRunDueEndsWhenATokenIsShortByRounding(t *testing.T) {
	g := idleGroup(t)

	now := time.Now()
	g.probeRate = bucket{tokens: 1 - 1e-8, last: now} // a wait of 0.05 ns
	g.peers["p"] = &peerState{queued: true}
	g.waiting[0] = []string{"p"}
	g.startWaiting(now)
	at, ok := g.sched.next()
	require.True(t, ok, "a probe-slot task is scheduled")
	assert.Greater(t, at, g.at(now), "the slot task is due after now")

	done := make(chan struct{})
	go func() {
		defer close(done)
		g.runDue(now)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // a hang, not a timing
		t.Fatal("runDue did not return: a task due again at once, for ever")
	}
}
