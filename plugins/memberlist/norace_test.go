//go:build !race

package memberlist_test

const raceEnabled = false
