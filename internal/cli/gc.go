package cli

import (
	"runtime"
	"runtime/debug"
	"sync/atomic"
)

// gcPercent is the GOGC pir and pir-agent run at unless GOGC is set:
// the runtime's heap floor scales with it (4 MiB at 100), 1 MiB at 25.
const gcPercent = 25

// keepGCPercent sets GOGC to pct and sets it again after every
// collection, until stop is called.
//
// Setting it again is what makes a low GOGC take effect on a small heap.
// At the end of each collection the runtime holds the next heap goal at
// the heap then live plus 1 MiB (its sweep distance), whatever GOGC says,
// until sweeping is done; only setting GOGC (or a memory limit) computes
// the goal again then. So a member whose live heap is 0.8 MiB collected
// at 1.8 MiB at GOGC 25 and at 2 MiB at GOGC 50, and setting GOGC again
// after each collection lets it collect at 1 MiB: 0.7 MiB less anonymous
// memory for a member of a 100-member group (docs/performance.md).
//
// A cleanup on an object allocated for the purpose is the hook: it runs
// once the collector has found the object unreachable, after the
// collection, and allocates the next one. It costs nothing between
// collections.
func keepGCPercent(pct int) (stop func()) {
	var stopped atomic.Bool
	debug.SetGCPercent(pct)
	armGCHook(pct, &stopped)
	return func() { stopped.Store(true) }
}

// gcHook is the object whose cleanup runs after a collection. It holds a
// pointer so that it is not combined with other small objects in one
// block (the tiny allocator), whose cleanup would wait for all of them.
type gcHook struct{ _ *byte }

func armGCHook(pct int, stopped *atomic.Bool) {
	runtime.AddCleanup(&gcHook{}, func(stopped *atomic.Bool) {
		if stopped.Load() {
			return
		}
		debug.SetGCPercent(pct)
		armGCHook(pct, stopped)
	}, stopped)
}
