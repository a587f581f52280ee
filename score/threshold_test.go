package score_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/pirlan/pir/score"
	"github.com/pirlan/pir/score/scoretest"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestThresholdConformance(t *testing.T) {
	scoretest.Run(t, score.NewThreshold(score.ThresholdConfig{}))
}

func TestThresholdOriginalNumbers(t *testing.T) {
	tr := score.NewThreshold(score.ThresholdConfig{}).Track(t0)
	steps := []struct {
		ev      score.Event
		health  float64
		verdict score.Verdict
	}{
		{score.ProbeOK, 1, score.Healthy},
		{score.ProbeFailed, 2.0 / 3, score.Suspect},
		{score.ProbeFailed, 1.0 / 3, score.Suspect},
		{score.ProbeOK, 2.0 / 3, score.Suspect},
		{score.Heartbeat, 2.0 / 3, score.Suspect}, // announcements don't count
		{score.ProbeOK, 1, score.Healthy},
		{score.ProbeOK, 1, score.Healthy}, // floored at 0
		{score.ProbeFailed, 2.0 / 3, score.Suspect},
		{score.ProbeFailed, 1.0 / 3, score.Suspect},
		{score.ProbeFailed, 0, score.Dead}, // removed at 3
	}
	for i, s := range steps {
		tr.Observe(score.Observation{Event: s.ev, At: t0.Add(time.Duration(i) * time.Second)})
		a := tr.Assess(t0.Add(time.Duration(i) * time.Second))
		assert.InDelta(t, s.health, a.Health, 1e-9, "step %d", i)
		assert.Equal(t, s.verdict, a.Verdict, "step %d", i)
	}
}

func TestThresholdConfigurable(t *testing.T) {
	p := score.NewThreshold(score.ThresholdConfig{Start: 1, Penalty: 2, Reward: 1, Limit: 5})
	tr := p.Track(t0)
	assert.Equal(t, score.Suspect, tr.Assess(t0).Verdict, "starts at 1")
	tr.Observe(score.Observation{Event: score.ProbeFailed, At: t0})
	assert.Equal(t, score.Suspect, tr.Assess(t0).Verdict, "3 of 5")
	tr.Observe(score.Observation{Event: score.ProbeFailed, At: t0})
	assert.Equal(t, score.Dead, tr.Assess(t0).Verdict, "5 of 5")
	assert.Equal(t, score.ThresholdConfig{Start: 1, Penalty: 2, Reward: 1, Limit: 5}, p.Config())
	assert.Equal(t, score.DefaultThresholdConfig(), score.NewThreshold(score.ThresholdConfig{}).Config())
}
