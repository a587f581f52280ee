package etcd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/score"
)

// WatchConfig configures a Watcher.
type WatchConfig struct {
	// Prefix is the key prefix the group's mirrors write under. Empty
	// means DefaultPrefix ("/pir"); trailing slashes are ignored.
	Prefix string

	// Group is the name of the group to follow. Required.
	Group string

	// RequestTimeout bounds each etcd request the Watcher makes after it
	// has started (the Get that resynchronises it). Zero means 5 s.
	RequestTimeout time.Duration

	// RetryInterval is the wait before trying again when etcd cannot be
	// reached. Zero means 1 s.
	RetryInterval time.Duration

	// MaxListenerQueue caps the events queued for one listener, as
	// discovery.Config.MaxListenerQueue does a Group's: a member's Updated
	// and HealthChanged events merge, and beyond the cap events are dropped
	// and counted (WatchStats.EventsDropped). Zero means
	// discovery.DefaultMaxListenerQueue.
	MaxListenerQueue int

	// Logger receives the Watcher's logs: resynchronisations and etcd
	// errors at Warn, each bad value at Debug. Nil means no logging.
	Logger hclog.Logger
}

// DefaultWatchConfig returns a WatchConfig for group with every default
// filled in.
func DefaultWatchConfig(group string) WatchConfig {
	return WatchConfig{
		Prefix: DefaultPrefix, Group: group, RequestTimeout: 5 * time.Second, RetryInterval: time.Second,
		MaxListenerQueue: discovery.DefaultMaxListenerQueue,
	}
}

// Validate reports every problem with c at once, each wrapping
// ErrInvalidConfig. Zero fields that take defaults are not problems.
func (c WatchConfig) Validate() error {
	var errs []error
	errs = append(errs, checkGroup(c.Group))
	if c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("%w: RequestTimeout %v is negative", ErrInvalidConfig, c.RequestTimeout))
	}
	if c.RetryInterval < 0 {
		errs = append(errs, fmt.Errorf("%w: RetryInterval %v is negative", ErrInvalidConfig, c.RetryInterval))
	}
	if c.MaxListenerQueue < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxListenerQueue %d is negative", ErrInvalidConfig, c.MaxListenerQueue))
	}
	return errors.Join(errs...)
}

func checkGroup(g string) error {
	switch {
	case g == "":
		return fmt.Errorf("%w: Group is required: the name of the pir group", ErrInvalidConfig)
	case !utf8.ValidString(g):
		return fmt.Errorf("%w: Group %q is not UTF-8", ErrInvalidConfig, g)
	}
	return nil
}

func (c WatchConfig) withDefaults() WatchConfig {
	d := DefaultWatchConfig(c.Group)
	c.Prefix = normPrefix(c.Prefix)
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = d.RetryInterval
	}
	if c.MaxListenerQueue == 0 {
		c.MaxListenerQueue = d.MaxListenerQueue
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c
}

// WatchStats counts what a Watcher has seen.
type WatchStats struct {
	// Puts and Deletes count the etcd events seen under the group's
	// prefix, the initial and resynchronising reads' keys included in
	// Puts.
	Puts, Deletes uint64
	// Bad counts values skipped because they did not decode: not JSON,
	// a wrong id or group, a URI that does not parse, too large, ...
	Bad uint64
	// Resyncs counts full re-reads of the group: after a compaction made
	// the watch lose its place, or after etcd cancelled it.
	Resyncs uint64
	// Events counts membership events emitted.
	Events uint64
	// EventsMerged counts events a listener never received because a
	// newer event of the same member replaced them in its queue, or the
	// member left; EventsDropped those dropped because a listener's queue
	// was full (WatchConfig.MaxListenerQueue).
	EventsMerged, EventsDropped uint64
	// Members is the number of members now.
	Members int
	// Revision is the etcd revision the Watcher is up to date with.
	Revision int64
}

// Watcher follows a group through etcd, for a process that is not on the
// group's LAN: it reads the keys the group's Mirrors write and reports
// changes with the events a discovery.Group emits.
//
// Watch reads the group, then one goroutine watches etcd from the revision
// read. If the watch loses its place (a compaction while the client was
// disconnected, or etcd cancelling it), the Watcher re-reads the group and
// reports the difference. Close stops it and waits for it and its listeners.
// Every method is safe for concurrent use.
type Watcher struct {
	cfg  WatchConfig
	cli  *clientv3.Client
	gp   string // group prefix
	log  hclog.Logger
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu      sync.RWMutex
	members map[string]discovery.Member
	subs    *discovery.Listeners
	rev     int64

	puts, deletes, bad, resyncs, events atomic.Uint64

	closeOnce sync.Once
}

// Watch starts a Watcher of cfg.Group through cli: it reads the group's keys
// and starts watching for changes. ctx bounds only that first read. The
// caller keeps cli and closes it after the Watcher.
func Watch(ctx context.Context, cli *clientv3.Client, cfg WatchConfig) (*Watcher, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil etcd client", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	w := &Watcher{
		cfg:     cfg,
		cli:     cli,
		gp:      groupPrefix(cfg.Prefix, cfg.Group),
		log:     cfg.Logger,
		members: map[string]discovery.Member{},
		subs:    discovery.NewListeners(cfg.MaxListenerQueue),
	}
	if err := w.resync(ctx); err != nil {
		return nil, fmt.Errorf("etcd: watch group %q: first read of %s: %w", cfg.Group, w.gp, err)
	}
	w.resyncs.Store(0)
	rctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	w.wg.Add(1)
	go w.run(rctx)
	return w, nil
}

// run watches the group from the revision read until ctx is done.
func (w *Watcher) run(ctx context.Context) {
	defer w.wg.Done()
	for {
		w.watch(ctx)
		// The watch ended: ctx is done, or etcd cancelled it (compaction,
		// no leader), or the client was closed. Re-read the group.
		for {
			if ctx.Err() != nil {
				return
			}
			rctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
			err := w.resync(rctx)
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			w.log.Warn("cannot read the group from etcd; retrying", "group", w.cfg.Group, "prefix", w.gp, "error", err, "retry", w.cfg.RetryInterval)
			select {
			case <-ctx.Done():
				return
			case <-time.After(w.cfg.RetryInterval):
			}
		}
	}
}

// watch applies the events of one etcd watch until it ends.
func (w *Watcher) watch(ctx context.Context) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	w.mu.RLock()
	from := w.rev + 1
	w.mu.RUnlock()
	for resp := range w.cli.Watch(wctx, w.gp, clientv3.WithPrefix(), clientv3.WithRev(from)) {
		if resp.CompactRevision != 0 {
			w.log.Warn("watch lost its place to a compaction; re-reading the group", "group", w.cfg.Group, "from", from, "compacted", resp.CompactRevision)
			return
		}
		if err := resp.Err(); err != nil {
			if ctx.Err() == nil {
				w.log.Warn("etcd ended the watch; re-reading the group", "group", w.cfg.Group, "error", err)
			}
			return
		}
		w.apply(resp.Events)
	}
}

// apply applies watch events in order.
func (w *Watcher) apply(evs []*clientv3.Event) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range evs {
		if ev.Kv.ModRevision > w.rev {
			w.rev = ev.Kv.ModRevision
		}
		key := string(ev.Kv.Key)
		if ev.Type == mvccpb.DELETE {
			w.deletes.Add(1)
			id, err := idFromKey(w.gp, key)
			if err != nil {
				continue // never a member key: counted when it was put
			}
			w.removeLocked(id, discovery.Expired, now)
			continue
		}
		w.puts.Add(1)
		r, err := decodeRecord(w.gp, w.cfg.Group, key, ev.Kv.Value)
		if err != nil {
			w.bad.Add(1)
			w.log.Debug("skipped a bad value", "key", key, "error", err)
			continue
		}
		if r.Left != "" {
			w.removeLocked(r.ID, r.reason(), now)
			continue
		}
		w.upsertLocked(r, now)
	}
}

// resync reads the whole group and reports the difference with what the
// Watcher knew.
func (w *Watcher) resync(ctx context.Context) error {
	resp, err := w.cli.Get(ctx, w.gp, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	now := time.Now()
	seen := map[string]record{}
	for _, kv := range resp.Kvs {
		w.puts.Add(1)
		r, err := decodeRecord(w.gp, w.cfg.Group, string(kv.Key), kv.Value)
		if err != nil {
			w.bad.Add(1)
			w.log.Debug("skipped a bad value", "key", string(kv.Key), "error", err)
			continue
		}
		seen[r.ID] = r
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.resyncs.Add(1)
	w.rev = resp.Header.Revision
	for _, id := range slices.Sorted(maps.Keys(w.members)) {
		if r, ok := seen[id]; !ok || r.Left != "" {
			why := discovery.Expired
			if ok {
				why = r.reason()
			}
			w.removeLocked(id, why, now)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(seen)) {
		if r := seen[id]; r.Left == "" {
			w.upsertLocked(r, now)
		}
	}
	return nil
}

// upsertLocked records r and emits Joined, Updated or HealthChanged.
func (w *Watcher) upsertLocked(r record, now time.Time) {
	m := discovery.Member{
		Peer:     r.peer(),
		Addr:     r.addr(),
		Health:   r.health(),
		Verdict:  verdict(r.health()),
		Joined:   now,
		LastSeen: now,
	}
	old, ok := w.members[r.ID]
	if !ok {
		w.members[r.ID] = m
		w.emitLocked(discovery.Event{Type: discovery.Joined, Member: m, At: now})
		return
	}
	m.Joined = old.Joined
	w.members[r.ID] = m
	switch {
	case !samePeer(old, m):
		w.emitLocked(discovery.Event{Type: discovery.Updated, Member: m, Prev: old, At: now})
	case old.Health != m.Health:
		w.emitLocked(discovery.Event{Type: discovery.HealthChanged, Member: m, Prev: old, At: now})
	}
}

// removeLocked forgets member id, if known, and emits Left.
func (w *Watcher) removeLocked(id string, why discovery.Reason, now time.Time) {
	m, ok := w.members[id]
	if !ok {
		return
	}
	delete(w.members, id)
	w.emitLocked(discovery.Event{Type: discovery.Left, Member: m, Reason: why, At: now})
}

func (w *Watcher) emitLocked(e discovery.Event) {
	w.events.Add(1)
	w.subs.Emit(e)
}

// verdict maps a recorded health to a verdict: a member in etcd is
// Healthy unless its writer recorded a lower health.
func verdict(h float64) score.Verdict {
	switch {
	case h >= 1:
		return score.Healthy
	case h > 0:
		return score.Suspect
	}
	return score.Dead
}

func samePeer(a, b discovery.Member) bool {
	return a.Addr == b.Addr && uriString(a.HealthURI) == uriString(b.HealthURI) &&
		uriString(a.CommsURI) == uriString(b.CommsURI) && maps.Equal(a.Meta, b.Meta)
}

// Members returns the group's members as etcd holds them, sorted by ID.
func (w *Watcher) Members() []discovery.Member {
	w.mu.RLock()
	defer w.mu.RUnlock()
	ms := slices.Collect(maps.Values(w.members))
	slices.SortFunc(ms, func(a, b discovery.Member) int { return strings.Compare(a.ID, b.ID) })
	return ms
}

// Member returns the member with the given ID.
func (w *Watcher) Member(id string) (discovery.Member, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	m, ok := w.members[id]
	return m, ok
}

// AddListener subscribes l to membership events and returns a function that
// unsubscribes it, as discovery.Group.AddListener does: l first receives a
// Joined event for every current member, then every change after. Each
// listener runs in a goroutine of its own; returning false unsubscribes it.
// A listener may call any Watcher method except Close. After Close,
// AddListener does nothing.
func (w *Watcher) AddListener(l discovery.Listener) (remove func()) {
	// Under mu, so that no change comes between the replay and the
	// events emitted after it.
	w.mu.RLock()
	defer w.mu.RUnlock()
	replay := make([]discovery.Event, 0, len(w.members))
	for _, id := range slices.Sorted(maps.Keys(w.members)) {
		m := w.members[id]
		replay = append(replay, discovery.Event{Type: discovery.Joined, Member: m, At: m.Joined})
	}
	return w.subs.Add(l, replay...)
}

// Stats returns a snapshot of the Watcher's counters.
func (w *Watcher) Stats() WatchStats {
	w.mu.RLock()
	defer w.mu.RUnlock()
	ls := w.subs.Stats()
	return WatchStats{
		Puts:          w.puts.Load(),
		Deletes:       w.deletes.Load(),
		Bad:           w.bad.Load(),
		Resyncs:       w.resyncs.Load(),
		Events:        w.events.Load(),
		EventsMerged:  ls.Merged,
		EventsDropped: ls.Dropped,
		Members:       len(w.members),
		Revision:      w.rev,
	}
}

// Close stops the Watcher and waits for its goroutine, then lets each
// listener finish the events already queued for it and waits for that too.
// It does not close the etcd client. Close is idempotent and returns nil.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		w.stop()
		w.wg.Wait()
		w.subs.Close()
		w.log.Debug("closed", "group", w.cfg.Group)
	})
	return nil
}
