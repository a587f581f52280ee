package discovery_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/score"
	"github.com/pirlan/pir/transport/mem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Above ProbeAllUpTo members, each member probes ProbeFanout members per
// ProbeInterval, whatever the size of the group; below it, every other
// member. A vanished member is still found, and the others learn it from
// obituaries. The legacy engine's rules: a pinging member's health URI is
// probed by itself only (HealthInterval), and its liveness by pings.
func TestBoundedProbing(t *testing.T) {
	const n = 40
	name := func(i int) string { return fmt.Sprintf("m%02d", i) }
	cases := []struct {
		name    string
		allUpTo int
		lo, hi  float64 // probes per member per second
	}{
		{"all-to-all", -1, 19, 20.5}, // 39 members every 2 s: 19.5
		{"bounded", 0, 1.8, 2.2},     // the default, 32: 4 every 2 s
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t)
				groups := make([]*discovery.Group, n)
				eps := make([]*mem.Endpoint, n)
				for i := range n {
					groups[i], eps[i] = l.join(name(i), legacy, func(c *discovery.Config) { c.ProbeAllUpTo = tc.allUpTo })
				}
				advance(10 * time.Second)
				for _, g := range groups {
					require.Len(t, g.Members(), n-1)
				}
				total := func() int {
					sum := 0
					for i := range n {
						sum += l.health.count(name(i) + ":1")
					}
					return sum
				}
				before := total()
				const window = 20 * time.Second
				advance(window)
				rate := float64(total()-before) / n / window.Seconds()
				t.Logf("%s: %.2f probes per member per second", tc.name, rate)
				assert.GreaterOrEqual(t, rate, tc.lo)
				assert.LessOrEqual(t, rate, tc.hi)

				l.vanish(name(0)+":1", eps[0], eps[1:]...)
				start := time.Now()
				for _, g := range groups[1:] {
					waitLeft(t, g, name(0), start, 8*time.Second)
				}
				var obits uint64
				for _, g := range groups[1:] {
					obits += g.Stats().Obituaries
				}
				if tc.allUpTo < 0 {
					assert.Zero(t, obits, "every member finds the death itself")
				} else {
					assert.Positive(t, obits, "most members learn the death from an obituary")
				}
			})
		})
	}
}

// A member that leaves and comes back under the same ID while a probe of
// its earlier life is still running is judged by its new probes only: the
// old probe's failure, when it times out, is not taken for the new
// member's.
func TestRejoinIgnoresProbeOfEarlierLife(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		l.health.set("b:1", silent) // b's first probe hangs until its timeout
		a, _ := l.join("a")
		ra := record(a)
		b, _ := l.join("b")
		advance(100 * time.Millisecond)
		require.Equal(t, 1, l.health.count("b:1"), "a's probe of b is running")
		require.NoError(t, b.Leave(context.Background()))
		synctest.Wait()

		l.health.set("b:1", up)
		l.join("b")
		synctest.Wait()
		require.Len(t, ra.of(discovery.Joined, "b"), 1, "b, back, is probed anew and joins")
		advance(3 * time.Second) // the first probe timed out at 2 s
		assert.Empty(t, ra.of(discovery.HealthChanged, "b"))
		m, ok := a.Member("b")
		require.True(t, ok)
		assert.Equal(t, score.Healthy, m.Verdict)
	})
}

// No more than MaxProbes/2 probes of pending peers run at once (the rest
// are kept for members), and the ones that wait for a slot all run in the
// end.
func TestMaxProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		own := newFakeHealth() // a's probes only
		names := []string{"b", "c", "d", "e", "f", "g", "h"}
		for _, n := range names {
			own.set(n+":1", silent) // each probe holds its slot for 2 s
		}
		// The peak counts admission probes: a's self-checks, which go
		// through the same Prober, are off.
		l.join("a", func(c *discovery.Config) { c.MaxProbes = 6; c.Prober = own; c.HealthInterval = -1 })
		for _, n := range names {
			l.join(n)
		}
		advance(5 * time.Second)
		own.mu.Lock()
		peak := own.peak
		own.mu.Unlock()
		assert.Equal(t, 3, peak, "the cap is reached and never passed")
		for _, n := range names {
			assert.Positive(t, own.count(n+":1"), "%s was probed", n)
		}
	})
}

// A member that failed a probe is probed again after SuspectProbeInterval,
// so a crashed one (refusing connections) is removed within one
// ProbeInterval plus two suspect intervals. The legacy engine's rule.
func TestSuspectProbedSooner(t *testing.T) {
	for _, tc := range []struct {
		suspect time.Duration
		within  time.Duration
	}{{0, 3 * time.Second}, {2 * time.Second, 6 * time.Second}} {
		t.Run(tc.suspect.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t)
				l.join("a", legacy)
				b, _ := l.join("b", legacy, func(c *discovery.Config) { c.SuspectProbeInterval = tc.suspect })
				synctest.Wait()
				rb := record(b)
				l.health.set("a:1", refuse)
				start := time.Now()
				for len(rb.of(discovery.Left, "a")) == 0 {
					advance(50 * time.Millisecond)
					require.Less(t, time.Since(start), 20*time.Second)
				}
				assert.LessOrEqual(t, time.Since(start), tc.within)
				assert.Greater(t, time.Since(start), tc.within-2*time.Second-50*time.Millisecond)
			})
		})
	}
}
