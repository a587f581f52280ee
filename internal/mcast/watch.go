package mcast

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// How RescanLoop paces the rescans that change notices call for.
const (
	// WatchedInterval is the least period of the safety rescan while
	// change notices arrive: they report every change, so the periodic
	// rescan only guards against a notice the kernel lost without saying
	// so.
	WatchedInterval = time.Minute
	// noticeSettle is how long a rescan waits after the first notice of
	// a burst (a new interface brings several: the link, then each
	// address), so that the rest of the burst joins it.
	noticeSettle = 20 * time.Millisecond
	// noticeGap is the least time from one rescan to the next that
	// notices call for, so that a host whose links chatter (wireless
	// events, containers starting) costs at most one rescan a second.
	noticeGap = time.Second
)

// A Watcher tells when the host's interfaces or their addresses may have
// changed. On Linux it listens to the kernel's notices of link and address
// changes (rtnetlink); elsewhere Watch fails with errors.ErrUnsupported.
type Watcher struct {
	c    chan struct{}
	stop func() error // closes the source, which ends the reader
	wg   sync.WaitGroup
}

// C receives when something may have changed: a burst of notices gives one
// or more receives, never a backlog (its capacity is one). It is closed
// when the Watcher stops, by Close or because its source failed.
func (w *Watcher) C() <-chan struct{} { return w.c }

// notify marks a change without ever blocking the reader.
func (w *Watcher) notify() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// Close stops the Watcher and waits for its reader to end.
func (w *Watcher) Close() error {
	err := w.stop()
	w.wg.Wait()
	return err
}

// RescanLoop calls rescan when the interfaces may have changed, until done
// is closed. The caller runs it in a goroutine it owns and waits for.
//
// Where a Watcher can be made (Linux), rescan runs once as soon as it is
// subscribed (a change between the caller's first scan and the
// subscription came with no notice), then after each burst of change
// notices: noticeSettle (20 ms) after the first notice, and no
// sooner than noticeGap (1 s) after the previous rescan; the periodic
// rescan then runs only as a safety net, once per interval or per
// WatchedInterval (1 min), whichever is longer. Where no Watcher can be
// made (another OS, a kernel without rtnetlink), or once it fails, rescan
// runs once per interval, as it always did. The Watcher is closed, and
// its reader waited for, before RescanLoop returns. A nil log logs
// nothing.
func RescanLoop(done <-chan struct{}, interval time.Duration, log hclog.Logger, rescan func()) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	var notices <-chan struct{}
	if w, err := Watch(); err != nil {
		log.Debug("cannot watch interface changes; polling", "interval", interval, "error", err)
	} else {
		defer w.Close()
		notices = w.C()
		rescan()
	}
	rescanLoop(done, interval, notices, log, rescan)
}

// rescanLoop is RescanLoop with its notices given: nil when there are none.
func rescanLoop(done <-chan struct{}, interval time.Duration, notices <-chan struct{}, log hclog.Logger, rescan func()) {
	period := interval
	if notices != nil {
		period = max(interval, WatchedInterval)
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	pending := false // settle is running
	var last time.Time
	run := func() {
		rescan()
		last = time.Now()
	}
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			run()
		case _, ok := <-notices:
			if !ok {
				log.Debug("interface watch ended; polling", "interval", interval)
				notices = nil
				tick.Reset(interval)
				continue
			}
			if !pending {
				pending = true
				settle.Reset(max(noticeSettle, noticeGap-time.Since(last)))
			}
		case <-settle.C:
			pending = false
			run()
		}
	}
}
