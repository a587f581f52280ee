//go:build race

package browser

// raceEnabled builds pir with the race detector when the tests have it.
const raceEnabled = true
