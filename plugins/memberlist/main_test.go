package memberlist_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// leakWait is how long the leak checks give memberlist's goroutines to
// end: Shutdown does not wait for them, and a probe in flight ends only at
// its timeout (500 ms by default, then as long again for indirect probes).
const leakWait = 10 * time.Second

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := findLeaks(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left running:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// findLeaks waits up to leakWait for every goroutine but the test's own
// to end, and reports those still running.
func findLeaks() error {
	deadline := time.Now().Add(leakWait)
	for {
		err := goleak.Find()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leakCheck checks, after t and its cleanups (registered later, so run
// earlier), that no goroutine is left running.
func leakCheck(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		if err := findLeaks(); err != nil {
			t.Error("goroutines left running:", err)
		}
	})
}
