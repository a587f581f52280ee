// Package score turns what is observed of a peer (probe results,
// announcement arrivals) into a health value and a verdict.
//
// HealthPolicy is the contract; Threshold is the default policy, counting
// probe failures the way the original pir did. Policies are pure logic with
// no I/O, goroutines or clock of their own, so they are tested with plain
// times and no waiting.
package score
