// Package score turns what is observed of a peer (probe results,
// announcement arrivals) into a health value and a verdict.
//
// HealthPolicy is the contract. Two policies come with it:
//
//   - Threshold counts probe failures the way the original pir did and
//     ignores announcements: simple, and found out after about three probe
//     intervals.
//   - PhiAccrual, discovery's default, a phi-accrual failure detector,
//     learns each peer's
//     announcement intervals and is corroborated by its probes: a peer
//     that stops announcing and fails a probe is found out in 2 to 3 s
//     under pir's default timings, while lost announcements alone are
//     ridden out.
//
// docs/policies.md compares them, with figures from the simulation in this
// package's tests.
//
// Policies are pure logic with no I/O, goroutines or clock of their own, so
// they are tested with plain times and no waiting. A policy is safe for
// concurrent use; each Tracker it makes is used by one goroutine at a time.
package score
