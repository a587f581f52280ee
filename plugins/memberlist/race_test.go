//go:build race

package memberlist_test

// raceEnabled builds the example with the race detector when the tests
// have it.
const raceEnabled = true
