package mcast

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/netlab"
)

// TestRescanLoopPolls: without notices, rescan runs every interval until
// done is closed.
func TestRescanLoopPolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		done := make(chan struct{})
		var n atomic.Int32
		exited := make(chan struct{})
		go func() {
			defer close(exited)
			rescanLoop(done, 5*time.Second, nil, hclog.NewNullLogger(), func() { n.Add(1) })
		}()
		time.Sleep(15*time.Second + time.Millisecond)
		assert.EqualValues(t, 3, n.Load())
		close(done)
		<-exited
	})
}

// TestRescanLoopNotices: with notices, a burst of them gives one rescan
// noticeSettle after its first, the next burst waits for noticeGap after
// that rescan, the periodic rescan slows to WatchedInterval, and when the
// notices end the loop polls every interval again.
func TestRescanLoopNotices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		done := make(chan struct{})
		notices := make(chan struct{}, 1)
		var n atomic.Int32
		exited := make(chan struct{})
		go func() {
			defer close(exited)
			rescanLoop(done, 5*time.Second, notices, hclog.NewNullLogger(), func() { n.Add(1) })
		}()
		burst := func() {
			for range 50 {
				notices <- struct{}{}
			}
			synctest.Wait()
		}

		burst()
		assert.EqualValues(t, 0, n.Load(), "the burst settles first")
		time.Sleep(noticeSettle - time.Millisecond)
		synctest.Wait()
		assert.EqualValues(t, 0, n.Load())
		time.Sleep(time.Millisecond)
		synctest.Wait()
		assert.EqualValues(t, 1, n.Load(), "one rescan for the burst")

		burst() // at once after the rescan
		time.Sleep(noticeGap - time.Millisecond)
		synctest.Wait()
		assert.EqualValues(t, 1, n.Load(), "no sooner than noticeGap after the last rescan")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		assert.EqualValues(t, 2, n.Load())

		// No notices: the safety rescan, once a minute from the start
		// rather than every 5 s. It is now 1.02 s after the start.
		time.Sleep(WatchedInterval - noticeGap - noticeSettle - time.Millisecond)
		synctest.Wait()
		assert.EqualValues(t, 2, n.Load())
		time.Sleep(time.Millisecond)
		synctest.Wait()
		assert.EqualValues(t, 3, n.Load())

		// The watch ends: polling every 5 s.
		close(notices)
		synctest.Wait()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		assert.EqualValues(t, 4, n.Load())
		time.Sleep(5 * time.Second)
		synctest.Wait()
		assert.EqualValues(t, 5, n.Load())

		close(done)
		<-exited
	})
}

// noticed waits for w to signal, at most timeout.
func noticed(t *testing.T, w *Watcher, what string) {
	t.Helper()
	select {
	case _, ok := <-w.C():
		require.True(t, ok, "the Watcher stopped before %s", what)
	case <-time.After(5 * time.Second):
		t.Fatalf("no notice of %s", what)
	}
}

// drain empties w's signal, so that the next receive is a fresh change.
func drain(w *Watcher) {
	select {
	case <-w.C():
	default:
	}
}

// TestWatcher: on Linux, in the namespace, the Watcher signals a new link,
// a link coming up, an address added and a link deleted; Close ends its
// reader at once (C is closed) and leaves no goroutine.
func TestWatcher(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	w, err := Watch()
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = w.Close()
		}
	})

	if out, err := netlab.IP("link", "add", "pirw0", "type", "veth", "peer", "name", "pirw1"); err != nil {
		t.Skipf("cannot make a veth pair in the namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = netlab.IP("link", "del", "pirw0") })
	noticed(t, w, "a new link")
	drain(w)
	netlab.MustIP(t, "link", "set", "pirw0", "up")
	noticed(t, w, "a link up")
	drain(w)
	netlab.MustIP(t, "addr", "add", "198.18.9.1/24", "dev", "pirw0")
	noticed(t, w, "an IPv4 address")
	if netlab.AvailableIPv6() {
		drain(w)
		netlab.MustIP(t, "-6", "addr", "add", "fd42:9::1/64", "dev", "pirw0", "nodad")
		noticed(t, w, "an IPv6 address")
	}
	drain(w)
	netlab.MustIP(t, "link", "del", "pirw0")
	noticed(t, w, "a link deleted")

	require.NoError(t, w.Close())
	closed = true
	for range w.C() { // a notice may still be queued; then C is closed
	}
}

// TestRescanLoopWatches: RescanLoop on Linux rescans once subscribed and
// when a link appears, though its interval is an hour, and returns, its
// Watcher closed, once done is closed.
func TestRescanLoopWatches(t *testing.T) {
	netlab.Require(t)
	const timeout = 10 * time.Second
	leakCheck(t)
	done := make(chan struct{})
	rescans := make(chan struct{}, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		RescanLoop(done, time.Hour, nil, func() {
			select {
			case rescans <- struct{}{}:
			default:
			}
		})
	}()
	defer func() {
		select {
		case <-exited:
		default:
			close(done)
			<-exited
		}
	}()

	// Subscribed, the loop rescans once: what changed before it
	// subscribed came with no notice.
	select {
	case <-rescans:
	case <-time.After(timeout):
		t.Fatalf("no rescan within %v of the start", timeout)
	}
	// Then a new link makes it rescan again.
	if out, err := netlab.IP("link", "add", "pirwa", "type", "veth", "peer", "name", "pirwap"); err != nil {
		t.Skipf("cannot make a veth pair in the namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = netlab.IP("link", "del", "pirwa") })
	select {
	case <-rescans:
	case <-time.After(timeout):
		t.Fatalf("no rescan within %v of a new link", timeout)
	}

	close(done)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("RescanLoop still runs 5 s after done was closed")
	}
}
