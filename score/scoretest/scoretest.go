// Package scoretest is the conformance suite every score.HealthPolicy must
// pass: the promises the Group relies on, whatever the policy's maths.
package scoretest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/score"
)

// Run checks p against the HealthPolicy contract:
//   - a new peer that answers its probes is Healthy with Health 1 or close;
//   - a peer whose probes keep failing becomes Dead within 100 failures and
//     its Health falls to 0, never rising meanwhile;
//   - Health stays within [0, 1] and Dead comes with Health 0;
//   - trackers are independent of each other;
//   - a suspect peer that answers again recovers to Healthy;
//   - any silence, however long, gives a valid assessment.
func Run(t *testing.T, p score.HealthPolicy) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const step = time.Second

	// live feeds a peer n rounds of heartbeat + successful probe.
	live := func(tr score.Tracker, from time.Time, n int) time.Time {
		now := from
		for range n {
			now = now.Add(step)
			tr.Observe(score.Observation{Event: score.Heartbeat, At: now})
			tr.Observe(score.Observation{Event: score.ProbeOK, At: now, RTT: time.Millisecond})
		}
		return now
	}

	t.Run("HealthyPeer", func(t *testing.T) {
		tr := p.Track(t0)
		now := live(tr, t0, 20)
		a := tr.Assess(now)
		assert.Equal(t, score.Healthy, a.Verdict)
		assert.InDelta(t, 1, a.Health, 0.05)
	})
	t.Run("FailingPeerDies", func(t *testing.T) {
		tr := p.Track(t0)
		now := live(tr, t0, 20)
		last := tr.Assess(now).Health
		for i := 0; ; i++ {
			require.Less(t, i, 100, "still not dead after 100 failed probes")
			now = now.Add(step)
			tr.Observe(score.Observation{Event: score.ProbeFailed, At: now})
			a := tr.Assess(now)
			require.GreaterOrEqual(t, a.Health, 0.0)
			require.LessOrEqual(t, a.Health, last+1e-9, "health rose on a failure")
			last = a.Health
			if a.Verdict == score.Dead {
				assert.Zero(t, a.Health)
				break
			}
		}
	})
	t.Run("Independent", func(t *testing.T) {
		a, b := p.Track(t0), p.Track(t0)
		now := live(a, t0, 10)
		live(b, t0, 10)
		for range 100 {
			now = now.Add(step)
			a.Observe(score.Observation{Event: score.ProbeFailed, At: now})
			b.Observe(score.Observation{Event: score.Heartbeat, At: now})
			b.Observe(score.Observation{Event: score.ProbeOK, At: now})
		}
		assert.Equal(t, score.Dead, a.Assess(now).Verdict)
		assert.Equal(t, score.Healthy, b.Assess(now).Verdict)
	})
	t.Run("Recovers", func(t *testing.T) {
		tr := p.Track(t0)
		now := live(tr, t0, 20)
		now = now.Add(step)
		tr.Observe(score.Observation{Event: score.ProbeFailed, At: now})
		if v := tr.Assess(now).Verdict; v == score.Dead {
			t.Skip("policy kills on one failure; nothing to recover from")
		}
		now = live(tr, now, 20)
		assert.Equal(t, score.Healthy, tr.Assess(now).Verdict)
	})
	t.Run("LongSilence", func(t *testing.T) {
		tr := p.Track(t0)
		now := live(tr, t0, 20)
		for _, d := range []time.Duration{0, step / 2, time.Hour, 365 * 24 * time.Hour, 200 * 365 * 24 * time.Hour} {
			a := tr.Assess(now.Add(d))
			assert.Contains(t, []score.Verdict{score.Healthy, score.Suspect, score.Dead}, a.Verdict, "after %v", d)
			assert.True(t, a.Health >= 0 && a.Health <= 1, "health %v after %v", a.Health, d)
			if a.Verdict == score.Dead {
				assert.Zero(t, a.Health, "after %v", d)
			}
		}
	})
}
