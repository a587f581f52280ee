package cli

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// TestKeepGCPercent checks that after a collection the heap goal is
// computed from GOGC, not held at the live heap plus the runtime's 1 MiB
// sweep distance, as it is when GOGC is only set once.
func TestKeepGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	const sweepDistance = 1 << 20
	headroom := func() (goal, live int64) {
		s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		return int64(s[0].Value.Uint64()), int64(s[1].Value.Uint64())
	}

	stop := keepGCPercent(gcPercent)
	t.Cleanup(stop)
	runtime.GC() // marks, then sweeps every span before it returns
	// The hook's cleanup runs on a goroutine of the runtime's: wait for
	// it to set GOGC again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		goal, live := headroom()
		if goal-live < sweepDistance {
			// At GOGC 25 the goal is a quarter above the live heap, its
			// stacks and globals, or 1 MiB (4 MiB x 25 / 100).
			t.Logf("heap goal %d bytes, live %d", goal, live)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("heap goal %d bytes with %d live 10 s after a collection: still held at live + 1 MiB", goal, live)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
