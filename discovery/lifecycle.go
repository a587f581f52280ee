package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pirlan/pir/codec"
)

// listenerRun is what Shutdown knows of a running listener.
type listenerRun struct {
	name     string // for ShutdownError
	shutdown bool   // inside a Shutdown it called from its own function
}

// ShutdownError is returned by Shutdown, Leave and Close when their bound
// ended before everything stopped. What it names is abandoned: each
// listener named is told to stop, so it receives no event after the one it
// is in, but its goroutine ends only when that call returns (Done closes
// then).
type ShutdownError struct {
	// Listeners names the listeners still running, by their function's
	// name (such as "main.run.func2"), sorted.
	Listeners []string
	// Internal is true when goroutines of the Group's own were still
	// running: a probe whose Prober ignores its context's end.
	Internal bool
	// Err is the context's error: context.DeadlineExceeded or
	// context.Canceled.
	Err error
}

func (e *ShutdownError) Error() string {
	var what []string
	if e.Internal {
		what = append(what, "probes still running (a Prober that ignores its context?)")
	}
	if len(e.Listeners) > 0 {
		what = append(what, fmt.Sprintf("%d listener(s) still running (%s)", len(e.Listeners), strings.Join(e.Listeners, ", ")))
	}
	return fmt.Sprintf("discovery: shutdown abandoned %s: %v", strings.Join(what, " and "), e.Err)
}

func (e *ShutdownError) Unwrap() error { return e.Err }

// Shutdown stops the Group without a goodbye and waits, until ctx ends, for
// everything it runs to stop: it closes the transport, stops every
// goroutine the Group started and waits for them, then lets each listener
// finish the events already queued for it and waits for that too. If ctx
// ends first, Shutdown abandons what still runs and returns a
// *ShutdownError naming it, which wraps ctx.Err(); Done tells when the
// abandoned listeners have returned.
//
// A listener may call Shutdown (or Close, or Leave) from its own function:
// the call then does not wait for that listener, which cannot return
// before it, nor for other listeners in the same position; the listener
// still receives the events queued for it once it returns. Every other
// caller waits for every listener.
//
// Shutdown may be called more than once, and concurrently: the first call
// stops the Group, and each call waits as above and reports the
// transport's Close error (the same for every call) joined with its own
// ShutdownError, if any.
func (g *Group) Shutdown(ctx context.Context) error {
	g.stop()
	me := g.callingListener()
	if me != nil {
		defer func() {
			g.mu.Lock()
			if r := g.running[me]; r != nil {
				r.shutdown = false
			}
			g.mu.Unlock()
		}()
	}
	return errors.Join(g.stopErr, g.waitStopped(ctx, me))
}

// stop starts stopping the Group, once: the owned goroutines are told to
// stop, and a goroutine of the Group's waits for them, then for the
// listeners.
func (g *Group) stop() {
	g.stopOnce.Do(func() {
		close(g.stopping)
		g.cancel()
		g.stopErr = g.cfg.Transport.Close()
		go g.finish()
	})
}

// finish waits for the goroutines the Group owns, then lets each listener
// drain its queue and waits for them, then closes done.
func (g *Group) finish() {
	g.wg.Wait()
	g.mu.Lock()
	close(g.closed) // no listener is added from now on
	subs := make([]*subscriber, 0, len(g.running))
	for s := range g.running {
		subs = append(subs, s)
	}
	g.mu.Unlock()
	for _, s := range subs {
		s.Finish()
	}
	close(g.ownedDone)
	g.subWG.Wait()
	g.log.Debug("closed")
	close(g.done)
}

// callingListener returns the listener whose function is calling, if one
// is, and marks it as inside Shutdown.
func (g *Group) callingListener() *subscriber {
	g.mu.Lock()
	defer g.mu.Unlock()
	for s, r := range g.running {
		if s.Calling() {
			r.shutdown = true
			return s
		}
	}
	return nil
}

// waitStopped waits until everything has stopped, or only the listeners
// the caller, listener me, must not wait for are left; or until ctx ends.
func (g *Group) waitStopped(ctx context.Context, me *subscriber) error {
	if me == nil {
		select {
		case <-g.done:
			return nil
		case <-ctx.Done():
			return g.abandon(ctx)
		}
	}
	select {
	case <-g.ownedDone:
	case <-ctx.Done():
		return g.abandon(ctx)
	}
	for {
		var next *subscriber
		g.mu.Lock()
		for s, r := range g.running {
			if s != me && !r.shutdown && !ended(s) {
				next = s
				break
			}
		}
		g.mu.Unlock()
		if next == nil {
			return nil
		}
		select {
		case <-next.Done():
		case <-ctx.Done():
			return g.abandon(ctx)
		}
	}
}

// ended reports whether s's goroutine has delivered its last event.
func ended(s *subscriber) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

// abandon stops delivering to the listeners still running but the caller,
// and says what it abandoned.
func (g *Group) abandon(ctx context.Context) error {
	e := &ShutdownError{Err: ctx.Err()}
	select {
	case <-g.ownedDone:
	default:
		e.Internal = true
	}
	g.mu.Lock()
	for s, r := range g.running {
		if s.Calling() || ended(s) {
			continue
		}
		s.Stop()
		e.Listeners = append(e.Listeners, r.name)
	}
	g.mu.Unlock()
	slices.Sort(e.Listeners)
	if !e.Internal && len(e.Listeners) == 0 {
		return nil // all stopped as ctx ended
	}
	g.log.Warn("shutdown abandoned", "listeners", e.Listeners, "probes", e.Internal)
	return e
}

// Close is Shutdown bounded by Config.CloseTimeout (5 s by default): it
// stops the Group without a goodbye and waits for its goroutines and its
// listeners, at most that long; then it returns a *ShutdownError naming
// what it abandoned. Close is idempotent: each call waits likewise and
// returns the transport's Close error (joined with its ShutdownError).
// A listener may call it; see Shutdown.
func (g *Group) Close() error {
	ctx := context.Background()
	if d := g.cfg.CloseTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	return g.Shutdown(ctx)
}

// Leave says goodbye to the group, so that members remove this one at once
// rather than after failed probes, then shuts the Group down as Shutdown
// does; from the goodbye on, the Group sends nothing more (no
// announcement, ping or answer that would have the members track it
// again). ctx bounds both. A Passive group sends no goodbye. Leave is
// idempotent: once the Group is stopping (after Leave, Close or Shutdown)
// it sends nothing and returns what Shutdown returns, nil when everything
// has stopped. A listener may call it; see Shutdown.
func (g *Group) Leave(ctx context.Context) error {
	var err error
	select {
	case <-g.stopping:
	default:
		// Once: a second Leave sends nothing and returns nil, but waits
		// until the first one's goodbye is out, so that its Shutdown
		// cannot close the transport under that goodbye.
		if !g.cfg.Passive {
			g.leaveOnce.Do(func() { err = g.goodbye(ctx) })
		}
	}
	return errors.Join(err, g.Shutdown(ctx))
}

func (g *Group) goodbye(ctx context.Context) error {
	// Twice, so that one lost datagram does not turn a goodbye into a
	// slow failure detection; each encoded anew, so that an authenticated
	// group does not take the second for a replay of the first.
	var errs []error
	g.leaving.Store(true) // our goodbye's loopback copies are ours (forgedSelfClaim)
	for range 2 {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		b, err := g.cfg.Codec.Encode(nil, &codec.Message{Kind: codec.Goodbye, Group: g.cfg.Name, ID: g.me().ID})
		if err != nil {
			return fmt.Errorf("discovery: encode goodbye: %w", err)
		}
		if err := g.send(b); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 2 || (len(errs) == 1 && ctx.Err() != nil) {
		return fmt.Errorf("discovery: send goodbye: %w", errors.Join(errs...))
	}
	return nil
}
