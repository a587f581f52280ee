//go:build race

package e2e

// raceEnabled builds pir with the race detector when the tests have it.
const raceEnabled = true
