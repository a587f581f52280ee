package score

import (
	"fmt"
	"time"
)

// HealthPolicy decides how healthy a peer is from what has been observed of
// it. It is pure logic: no I/O, no goroutines, and no clock of its own; every
// observation and assessment carries the time it is about.
//
// A HealthPolicy is a factory: Track makes the per-peer state. A HealthPolicy
// is safe for concurrent use; a Tracker is not, and is used by one goroutine
// at a time (the Group's).
type HealthPolicy interface {
	// Track starts tracking a peer first seen at now.
	Track(now time.Time) Tracker
}

// Tracker holds what one peer's policy has learned.
type Tracker interface {
	// Observe records one event.
	Observe(o Observation)
	// Assess reports the peer's health at now. A policy that judges by
	// silence (how long since the last heartbeat) uses now; one that
	// judges by counting probe results may ignore it.
	Assess(now time.Time) Assessment
}

// Event is what was observed.
type Event uint8

const (
	// ProbeOK is a successful health probe.
	ProbeOK Event = iota + 1
	// ProbeFailed is a failed or timed-out health probe.
	ProbeFailed
	// Heartbeat is an announcement received from the peer.
	Heartbeat
)

func (e Event) String() string {
	switch e {
	case ProbeOK:
		return "probe-ok"
	case ProbeFailed:
		return "probe-failed"
	case Heartbeat:
		return "heartbeat"
	}
	return fmt.Sprintf("Event(%d)", uint8(e))
}

// Observation is one event about a peer.
type Observation struct {
	Event Event
	// At is when it happened.
	At time.Time
	// RTT is how long a probe took: its round-trip time when it succeeded,
	// the time to the failure when it failed (an instant refusal says more
	// than a timeout). Zero for a heartbeat.
	RTT time.Duration
}

// Verdict is a policy's judgement.
type Verdict uint8

const (
	// Healthy: nothing wrong has been seen lately.
	Healthy Verdict = iota + 1
	// Suspect: something is wrong, but not yet enough to give up.
	Suspect
	// Dead: remove the peer.
	Dead
)

func (v Verdict) String() string {
	switch v {
	case Healthy:
		return "healthy"
	case Suspect:
		return "suspect"
	case Dead:
		return "dead"
	}
	return fmt.Sprintf("Verdict(%d)", uint8(v))
}

// Assessment is a Tracker's answer.
type Assessment struct {
	// Health runs from 1 (fully healthy) down to 0 (dead). Policies map
	// their own measure onto it, so that applications can compare peers
	// and show a gauge whatever the policy.
	Health  float64
	Verdict Verdict
}
