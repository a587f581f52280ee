package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
)

// MirrorConfig configures a Mirror.
type MirrorConfig struct {
	// Prefix is the key prefix: the member's key is
	// <Prefix>/<Group>/<ID>, group and ID path-escaped. Empty means
	// DefaultPrefix ("/pir"); trailing slashes are ignored.
	Prefix string

	// Group is the group's name, the discovery.Config.Name the Group was
	// joined with. Required.
	Group string

	// TTL is the lease time to live: how long the member's key outlives
	// the member when nobody deletes it (a crash, a lost etcd
	// connection). Rounded up to whole seconds; etcd raises a TTL below its
	// own minimum (1.5 election timeouts, 2 s by default). Zero means 10 s,
	// pir's default ExpireAfter.
	TTL time.Duration

	// Addr is the address the member announces from, written into its
	// value for watchers; the zero AddrPort (the default) leaves it out.
	// When it is set, an unspecified host in the member's URIs
	// (tcp://0.0.0.0:port, as pir's examples advertise) is written with
	// Addr's IP instead, since a watcher off the LAN cannot use 0.0.0.0.
	Addr netip.AddrPort

	// Prober probes the member's own health URI before it writes (or
	// writes again) its key, so that a member that the group found
	// unhealthy does not put itself back while its health check fails. An
	// unspecified host (0.0.0.0, ::) is probed on loopback. Nil means
	// healthcheck.NewRegistry(); a healthcheck.ProberFunc that returns nil
	// turns the check off.
	Prober healthcheck.Prober

	// RequestTimeout bounds each etcd request and self-probe the Mirror
	// makes after it has started. Zero means 5 s.
	RequestTimeout time.Duration

	// RetryInterval is the wait before trying again when etcd cannot be
	// reached or the self-probe fails. Zero means 1 s.
	RetryInterval time.Duration

	// Logger receives the Mirror's logs: failures to register (etcd
	// errors, failed self-probes) at Warn, the first of a run only, later
	// ones at Debug; registrations, evictions and failed evictions at
	// Debug. Nil means no logging.
	Logger hclog.Logger
}

// DefaultMirrorConfig returns a MirrorConfig for group with every default
// filled in.
func DefaultMirrorConfig(group string) MirrorConfig {
	return MirrorConfig{
		Prefix:         DefaultPrefix,
		Group:          group,
		TTL:            10 * time.Second,
		RequestTimeout: 5 * time.Second,
		RetryInterval:  time.Second,
	}
}

// Validate reports every problem with c at once, each wrapping
// ErrInvalidConfig. Zero fields that take defaults are not problems.
func (c MirrorConfig) Validate() error {
	var errs []error
	errs = append(errs, checkGroup(c.Group))
	if c.TTL < 0 || c.TTL > time.Duration(math.MaxInt32)*time.Second {
		errs = append(errs, fmt.Errorf("%w: TTL %v is negative or too large", ErrInvalidConfig, c.TTL))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("%w: RequestTimeout %v is negative", ErrInvalidConfig, c.RequestTimeout))
	}
	if c.RetryInterval < 0 {
		errs = append(errs, fmt.Errorf("%w: RetryInterval %v is negative", ErrInvalidConfig, c.RetryInterval))
	}
	return errors.Join(errs...)
}

func (c MirrorConfig) withDefaults() MirrorConfig {
	d := DefaultMirrorConfig(c.Group)
	c.Prefix = normPrefix(c.Prefix)
	if c.TTL == 0 {
		c.TTL = d.TTL
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = d.RetryInterval
	}
	if c.Prober == nil {
		c.Prober = healthcheck.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c
}

// ttlSeconds is the lease TTL etcd is asked for.
func (c MirrorConfig) ttlSeconds() int64 {
	return int64((c.TTL + time.Second - 1) / time.Second)
}

// MirrorStats counts what a Mirror has done.
type MirrorStats struct {
	// Registered tells whether the member's key is in etcd, as far as
	// the Mirror knows.
	Registered bool
	// Lease is the current lease's ID, 0 when there is none.
	Lease int64
	// Leases counts leases granted; more than one means a lease was lost
	// (etcd unreachable for longer than the TTL) and replaced.
	Leases uint64
	// Writes counts writes of the member's own key: the first, and each
	// one after a peer deleted it or a lease was lost.
	Writes uint64
	// SelfProbeFailures counts self-probes that failed, each delaying a
	// write by RetryInterval.
	SelfProbeFailures uint64
	// Evictions counts keys of departed peers this Mirror deleted;
	// a key already gone is not counted.
	Evictions uint64
	// Errors counts etcd requests that failed.
	Errors uint64
}

// Mirror mirrors one member of a discovery.Group into etcd, and removes the
// keys of the peers it sees leave. See the package documentation for who
// writes what.
//
// One goroutine keeps the member's lease alive, watches its key and writes
// it again when a peer deleted it while the member is healthy; the same
// goroutine deletes the keys of departed peers. Leave deletes the key at once
// and leaves the group; Close stops without deleting it, so it ends with its
// lease, as after a crash. Every method is safe for concurrent use.
type Mirror struct {
	cfg   MirrorConfig
	g     *discovery.Group
	cli   *clientv3.Client
	self  discovery.Peer
	key   string
	value []byte
	log   hclog.Logger

	stop           context.CancelFunc
	wg             sync.WaitGroup
	removeListener func()

	qmu   sync.Mutex
	queue []discovery.Event // Joined and Left events of peers, for evictions
	wake  chan struct{}     // capacity 1

	lease                                       atomic.Int64 // written by run only; read by Stats and, after run, by Leave
	registered                                  atomic.Bool
	leases, writes, probeFails, evictions, errs atomic.Uint64

	closeOnce sync.Once
	closed    atomic.Bool
}

// StartMirror registers g's member in etcd under cfg.Prefix and keeps it
// there while the member is alive and healthy, and deletes the key of every
// peer g sees leave. ctx bounds only the start: granting the lease and the
// first write. If the member's self-probe fails, StartMirror still
// succeeds and the key is written once the probe passes.
//
// The caller keeps g and cli. End a member with Mirror.Leave, which also
// leaves g; or Close the Mirror before (or after) closing g.
func StartMirror(ctx context.Context, g *discovery.Group, cli *clientv3.Client, cfg MirrorConfig) (*Mirror, error) {
	switch {
	case g == nil:
		return nil, fmt.Errorf("%w: nil discovery.Group", ErrInvalidConfig)
	case cli == nil:
		return nil, fmt.Errorf("%w: nil etcd client", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	self := g.Self()
	if self.HealthURI == nil {
		return nil, fmt.Errorf("%w: the group's member has no health URI (a passive group?): a Mirror registers a member; use Watch to follow a group", ErrInvalidConfig)
	}
	value, err := recordOf(cfg.Group, withHost(self, cfg.Addr), cfg.Addr, 1).encode()
	if err != nil {
		return nil, err
	}
	m := &Mirror{
		cfg:   cfg,
		g:     g,
		cli:   cli,
		self:  self,
		key:   memberKey(cfg.Prefix, cfg.Group, self.ID),
		value: value,
		log:   cfg.Logger.With("group", cfg.Group, "id", self.ID),
		wake:  make(chan struct{}, 1),
	}
	lease, err := m.grant(ctx)
	if err != nil {
		return nil, err
	}
	rev, err := m.register(ctx, lease)
	var probeErr *selfProbeError
	switch {
	case errors.As(err, &probeErr):
		m.log.Warn("own health probe failed; the key will be written once it passes", "health", self.HealthURI.String(), "error", err)
	case err != nil:
		rctx, cancel := context.WithTimeout(context.Background(), cfg.RequestTimeout)
		_, _ = cli.Revoke(rctx, lease)
		cancel()
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	m.removeListener = g.AddListener(m.onEvent)
	m.wg.Add(1)
	go m.run(rctx, lease, rev)
	return m, nil
}

// selfProbeError is a failed self-probe.
type selfProbeError struct{ err error }

func (e *selfProbeError) Error() string { return "etcd: own health probe failed: " + e.err.Error() }
func (e *selfProbeError) Unwrap() error { return e.err }

// grant gets a new lease.
func (m *Mirror) grant(ctx context.Context) (clientv3.LeaseID, error) {
	resp, err := m.cli.Grant(ctx, m.cfg.ttlSeconds())
	if err != nil {
		m.errs.Add(1)
		return 0, fmt.Errorf("etcd: grant a lease of %ds for %s: %w", m.cfg.ttlSeconds(), m.key, err)
	}
	m.leases.Add(1)
	m.lease.Store(int64(resp.ID))
	return resp.ID, nil
}

// register probes the member's own health, then writes its key with lease.
// It returns the revision of the write.
func (m *Mirror) register(ctx context.Context, lease clientv3.LeaseID) (int64, error) {
	pctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	err := m.cfg.Prober.Probe(pctx, selfTarget(m.self.HealthURI))
	cancel()
	if err != nil {
		m.probeFails.Add(1)
		return 0, &selfProbeError{err}
	}
	resp, err := m.cli.Put(ctx, m.key, string(m.value), clientv3.WithLease(lease))
	if err != nil {
		m.errs.Add(1)
		return 0, fmt.Errorf("etcd: write %s: %w", m.key, err)
	}
	m.writes.Add(1)
	m.registered.Store(true)
	m.log.Debug("registered", "key", m.key, "lease", int64(lease), "revision", resp.Header.Revision)
	return resp.Header.Revision, nil
}

// withHost returns p with an unspecified host in its URIs replaced by
// addr's IP, if addr is valid.
func withHost(p discovery.Peer, addr netip.AddrPort) discovery.Peer {
	if !addr.IsValid() {
		return p
	}
	fix := func(u *url.URL) *url.URL {
		if u == nil {
			return nil
		}
		ap, err := netip.ParseAddrPort(u.Host)
		if err != nil || !ap.Addr().IsUnspecified() {
			return u
		}
		c := *u
		c.Host = netip.AddrPortFrom(addr.Addr(), ap.Port()).String()
		return &c
	}
	p.HealthURI, p.CommsURI = fix(p.HealthURI), fix(p.CommsURI)
	return p
}

// selfTarget is u with an unspecified host replaced by loopback.
func selfTarget(u *url.URL) *url.URL {
	ap, err := netip.ParseAddrPort(u.Host)
	if err != nil || !ap.Addr().IsUnspecified() {
		return u
	}
	lo := netip.MustParseAddr("127.0.0.1")
	if ap.Addr().Is6() {
		lo = netip.IPv6Loopback()
	}
	c := *u
	c.Host = netip.AddrPortFrom(lo, ap.Port()).String()
	return &c
}

// onEvent queues the events that may call for an eviction. It never blocks.
func (m *Mirror) onEvent(e discovery.Event) bool {
	if e.Type != discovery.Left && e.Type != discovery.Joined {
		return true
	}
	m.qmu.Lock()
	m.queue = append(m.queue, e)
	m.qmu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return true
}

// run keeps the member registered and carries out evictions until ctx is
// done. lease is the lease granted at start; rev the revision of the first
// write, 0 if it did not happen.
func (m *Mirror) run(ctx context.Context, lease clientv3.LeaseID, rev int64) {
	defer m.wg.Done()
	var (
		ka       <-chan *clientv3.LeaseKeepAliveResponse
		kaCancel = func() {}
		wch      clientv3.WatchChan
		wCancel  = func() {}
		retry    = time.NewTimer(time.Hour)
		failing  bool // log repeated failures at Debug only
		pending  = map[string]discovery.Event{}
	)
	retry.Stop()
	defer func() {
		kaCancel()
		wCancel()
		retry.Stop()
	}()
	warn := func(msg string, args ...any) {
		if failing {
			m.log.Debug(msg, args...)
		} else {
			m.log.Warn(msg, args...)
		}
		failing = true
	}
	keepAlive := func() {
		kaCancel()
		kctx, cancel := context.WithCancel(ctx)
		ch, err := m.cli.KeepAlive(kctx, lease)
		if err != nil {
			cancel()
			m.errs.Add(1)
			warn("cannot keep the lease alive; granting another", "lease", int64(lease), "error", err)
			lease = 0
			m.lease.Store(0)
			ka, kaCancel = nil, func() {}
			return
		}
		ka, kaCancel = ch, cancel
	}
	watchKey := func(from int64) {
		wCancel()
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch, wCancel = m.cli.Watch(wctx, m.key, clientv3.WithRev(from)), cancel
	}
	unregistered := func() {
		m.registered.Store(false)
		wCancel()
		wch, wCancel = nil, func() {}
	}
	// up brings the lease and the key back; on failure it arms retry.
	up := func() {
		for regrant := false; ; {
			if lease == 0 {
				rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
				l, err := m.grant(rctx)
				cancel()
				if err != nil {
					if ctx.Err() == nil {
						warn("cannot grant a lease; retrying", "error", err, "retry", m.cfg.RetryInterval)
						retry.Reset(m.cfg.RetryInterval)
					}
					return
				}
				lease = l
				keepAlive()
				if lease == 0 {
					retry.Reset(m.cfg.RetryInterval)
					return
				}
			}
			if m.registered.Load() {
				return
			}
			rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
			r, err := m.register(rctx, lease)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if errors.Is(err, rpctypes.ErrLeaseNotFound) && !regrant {
					// The lease ended while nobody could keep it alive:
					// take a new one now rather than after RetryInterval.
					lease = 0
					m.lease.Store(0)
					kaCancel()
					ka, kaCancel = nil, func() {}
					regrant = true
					continue
				}
				warn("cannot write the member's key; retrying", "key", m.key, "error", err, "retry", m.cfg.RetryInterval)
				retry.Reset(m.cfg.RetryInterval)
				return
			}
			failing = false
			watchKey(r + 1)
			return
		}
	}

	keepAlive()
	if lease != 0 && rev != 0 {
		watchKey(rev + 1)
	} else {
		up()
	}
	for {
		select {
		case <-ctx.Done():
			return

		case _, ok := <-ka:
			if ok {
				continue
			}
			if ctx.Err() != nil {
				return
			}
			warn("lease lost (etcd unreachable for longer than the TTL?); granting another", "lease", int64(lease))
			lease = 0
			m.lease.Store(0)
			ka, kaCancel = nil, func() {}
			unregistered()
			up()

		case resp, ok := <-wch:
			if !ok || resp.Err() != nil || resp.CompactRevision != 0 {
				if ctx.Err() != nil {
					return
				}
				// The watch ended: write the key again, which also
				// restarts the watch from the write.
				unregistered()
				up()
				continue
			}
			for _, ev := range resp.Events {
				if ev.Type == mvccpb.DELETE || isNote(ev.Kv.Value) {
					m.log.Debug("key removed by a peer; writing it again once healthy", "key", m.key)
					unregistered()
					up()
					break
				}
			}

		case <-retry.C:
			up()
			if !m.evict(ctx, pending) {
				retry.Reset(m.cfg.RetryInterval)
			}

		case <-m.wake:
			m.qmu.Lock()
			q := m.queue
			m.queue = nil
			m.qmu.Unlock()
			for _, e := range q {
				if e.Type == discovery.Left {
					pending[e.Member.ID] = e
				} else {
					delete(pending, e.Member.ID) // back before we evicted it
				}
			}
			if !m.evict(ctx, pending) {
				retry.Reset(m.cfg.RetryInterval)
			}
		}
	}
}

// isNote tells whether a value of the member's own key is a departure note.
func isNote(v []byte) bool {
	var r struct {
		Left string `json:"left"`
	}
	return json.Unmarshal(v, &r) == nil && r.Left != ""
}

// evict deletes the keys of the departed peers in pending, each after a
// departure note, and forgets those done. It reports whether all were done.
func (m *Mirror) evict(ctx context.Context, pending map[string]discovery.Event) bool {
	for id, e := range pending {
		if id == m.self.ID {
			delete(pending, id)
			continue
		}
		err := m.evictOne(ctx, e)
		if ctx.Err() != nil {
			return false
		}
		if err != nil {
			m.errs.Add(1)
			// At Debug: while etcd is down, the registration's Warn says so.
			m.log.Debug("cannot delete a departed peer's key; retrying", "peer", id, "error", err, "retry", m.cfg.RetryInterval)
			continue
		}
		delete(pending, id)
	}
	return len(pending) == 0
}

// evictOne writes a departure note over the key of e's member, keeping its
// lease, then deletes it. A key already gone is not an error.
func (m *Mirror) evictOne(ctx context.Context, e discovery.Event) error {
	key := memberKey(m.cfg.Prefix, m.cfg.Group, e.Member.ID)
	note := recordOf(m.cfg.Group, e.Member.Peer, e.Member.Addr, 0)
	note.Left = leftNote(e.Reason)
	v, err := note.encode()
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	if _, err := m.cli.Put(rctx, key, string(v), clientv3.WithIgnoreLease()); err != nil {
		if errors.Is(err, rpctypes.ErrKeyNotFound) {
			return nil // never registered, left by itself, or evicted by another peer
		}
		return fmt.Errorf("etcd: write departure note on %s: %w", key, err)
	}
	if _, err := m.cli.Delete(rctx, key); err != nil {
		return fmt.Errorf("etcd: delete %s: %w", key, err)
	}
	m.evictions.Add(1)
	m.log.Debug("evicted a departed peer", "key", key, "reason", e.Reason)
	return nil
}

// shutdown stops the goroutine and the listener; it reports false if the
// Mirror was already shut down.
func (m *Mirror) shutdown() bool {
	first := false
	m.closeOnce.Do(func() {
		first = true
		m.closed.Store(true)
		m.removeListener()
		m.stop()
		m.wg.Wait()
	})
	return first
}

// Leave removes the member from etcd at once (a departure note, then the
// lease is revoked, which deletes the key), stops the Mirror, then leaves
// the group with g.Leave, which sends pir's goodbye. ctx bounds both. After
// Close or Leave it returns ErrClosed and does nothing.
func (m *Mirror) Leave(ctx context.Context) error {
	if !m.shutdown() {
		return ErrClosed
	}
	var errs []error
	if lease := clientv3.LeaseID(m.lease.Load()); lease != 0 {
		note := recordOf(m.cfg.Group, m.self, m.cfg.Addr, 0)
		note.Left = leftGoodbye
		if v, err := note.encode(); err == nil {
			_, err := m.cli.Put(ctx, m.key, string(v), clientv3.WithIgnoreLease())
			if err != nil && !errors.Is(err, rpctypes.ErrKeyNotFound) {
				errs = append(errs, fmt.Errorf("etcd: write goodbye on %s: %w", m.key, err))
			}
		}
		if _, err := m.cli.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			errs = append(errs, fmt.Errorf("etcd: revoke lease of %s (the key ends with its TTL): %w", m.key, err))
		}
		m.registered.Store(false)
	}
	if err := m.g.Leave(ctx); err != nil && !errors.Is(err, discovery.ErrClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Close stops the Mirror and waits for its goroutine, without deleting the
// member's key: the key ends with its lease, TTL after Close, as it would
// after a crash (peers that see the member fail delete it sooner). It does
// not close the Group or the etcd client. Close is idempotent and returns
// nil.
func (m *Mirror) Close() error {
	m.shutdown()
	return nil
}

// Stats returns a snapshot of the Mirror's counters.
func (m *Mirror) Stats() MirrorStats {
	return MirrorStats{
		Registered:        m.registered.Load(),
		Lease:             m.lease.Load(),
		Leases:            m.leases.Load(),
		Writes:            m.writes.Load(),
		SelfProbeFailures: m.probeFails.Load(),
		Evictions:         m.evictions.Load(),
		Errors:            m.errs.Load(),
	}
}

// Key returns the member's key in etcd.
func (m *Mirror) Key() string { return m.key }
