package nslan

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadProcStats reads this very process, against getrusage.
func TestReadProcStats(t *testing.T) {
	cpuTime := func() time.Duration {
		var ru syscall.Rusage
		require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	// Burn 200 ms of processor time, as getrusage counts it.
	start := cpuTime()
	for x := 0; cpuTime()-start < 200*time.Millisecond; x++ {
		_ = x * x
	}
	before := cpuTime()
	s, err := readProcStats(os.Getpid())
	after := cpuTime()
	require.NoError(t, err)
	// The threads' run times are exact; the test's own goroutines run
	// between the readings: allow a little.
	const slack = 5 * time.Millisecond
	assert.GreaterOrEqual(t, s.CPU, before-slack)
	assert.LessOrEqual(t, s.CPU, after+slack)
	assert.Greater(t, s.CPU, start+150*time.Millisecond)

	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	assert.Greater(t, s.RSS, uint64(1<<20), "a Go test binary holds more than 1 MiB")
	assert.LessOrEqual(t, s.RSS, uint64(ru.Maxrss)<<10+1<<20, "RSS at most the peak getrusage reports")

	_, err = readProcStats(1 << 30)
	assert.Error(t, err, "no such process")
}
