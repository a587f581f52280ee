package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pirlan/pir/transport"
)

var (
	// ErrClosed says a Group has been closed; it wraps net.ErrClosed. No
	// method returns it any more (Leave after Close returns nil, as a
	// second Close does); it stays for code that tests for it.
	ErrClosed = fmt.Errorf("discovery: group closed: %w", net.ErrClosed)
	// ErrInvalidConfig wraps every problem Config.Validate reports.
	ErrInvalidConfig = errors.New("discovery: invalid config")
)

// receiveBuffer is the size of the Group's receive buffer: any UDP datagram
// fits, so the transport never has to cut one; the codec then refuses what
// is over its own limit.
const receiveBuffer = 64 << 10

// Group is this process's membership of one group: it announces itself,
// tracks the other members, probes their health and tells listeners what
// changes.
//
// One goroutine owns the membership state. A second receives datagrams, and
// each probe in flight runs in one more. All of them stop when the Group is
// closed; Shutdown and Close wait for them and for the listeners, up to a
// bound.
type Group struct {
	cfg    Config
	self   atomic.Pointer[Peer] // our record: replaced whole by Update, never changed in place (me)
	log    hclog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // receiver, owner, probes
	subWG  sync.WaitGroup // listeners

	inbox   chan inbound     // receiver -> owner
	results chan probeResult // probes -> owner
	stats   counters

	// mu guards peers (written only by the owner goroutine, read by
	// Members) and subs. The owner emits events while holding it, so that
	// AddListener's replay and later events never overlap or miss.
	mu    sync.RWMutex
	peers map[string]*peerState
	subs  map[*subscriber]struct{}

	// Owned by the owner goroutine.
	sched     schedule
	inflight  int         // probes running
	waiting   [2][]string // peers whose probe waits its turn: [0] joined, [1] pending
	probeRate bucket      // Config.MaxProbeRate; guarded by adm.rateMu
	adm       admission   // pending peers' probes (admit.go)
	slotArmed bool        // a taskProbeSlot is scheduled
	sources   sourceLimiter
	answers   sourceLimiter               // Config.AnswerRate
	pending   int                         // peers tracked but not joined
	noRoom    atomic.Bool                 // MaxPeers or MaxPending reached: see full
	leaving   atomic.Bool                 // our goodbye is going out (forgedSelfClaim)
	claims    bucket                      // the receiver's: refutations of forged self-claims, claimRate
	announce  []byte                      // our announcement, encoded once to check it; nil when not announcing
	bounded   bool                        // more members than ProbeAllUpTo: probe a few per round
	round     []string                    // bounded probing: the members left in this round
	roundOn   bool                        // a taskRound is scheduled
	seq       uint32                      // numbers confirmations
	gens      uint32                      // numbers peer states' generations (peerState.gen)
	refuted   time.Time                   // when we last answered an obituary about ourselves
	askers    map[string][]netip.AddrPort // members waiting for our probe of a peer (a Confirm with Probe)
	queries   [4]queryHeard               // the latest queries answered, to answer each once (see answer)
	nextQuery int                         // where in queries the next one goes
	answerTok bucket                      // answers to queries (see answerSoon)
	answerDue bool                        // a taskAnswer is scheduled
	alt       map[string]altAddr          // joined members' addresses on their other path (see noteAlt)
	ann       annState                    // when our periodic announcements go (rtcp.go)
	xfer      transfers                   // joins by state transfer (transfer.go)
	pg        pinger                      // the ping protocol (ping.go)
	rep       repairState                 // repair through pings (repair.go)

	// links is set when our URIs name no host (0.0.0.0, [::]): each link
	// then gets an announcement carrying its own address.
	links  transport.LinkSender
	v4Only bool // the unspecified host was 0.0.0.0

	// Lifecycle (lifecycle.go). closed is closed, with mu held, once no
	// listener can be added; running holds every listener goroutine not
	// yet ended, guarded by mu.
	stopOnce  sync.Once
	stopErr   error         // the transport's Close, set before stopping closes
	stopping  chan struct{} // closed when Shutdown (Close, Leave) starts
	ownedDone chan struct{} // closed when the Group's own goroutines have stopped
	done      chan struct{} // closed when they and every listener have stopped
	closed    chan struct{}
	leaveOnce sync.Once // the goodbye: concurrent Leaves wait for the first one's
	running   map[*subscriber]*listenerRun

	// epoch is the origin of the owner's instants (see instant): a second
	// before the Group was made, so that nothing it records is zero.
	epoch time.Time

	// Owned by the owner goroutine: the members whose Updated events are
	// rate limited now (listeners.go).
	holds   map[string]*updateHold
	holdSeq uint32

	health  selfHealth      // our own health checks and reports (selfcheck.go)
	updates chan selfUpdate // Update -> owner
}

// Join starts a Group: it checks cfg, asks the group who is there, and
// starts announcing. ctx bounds only the start; use Leave or Close to stop.
// On error the Transport is closed.
func Join(ctx context.Context, cfg Config) (*Group, error) {
	cfg.Self = cfg.Self.clone()
	if err := cfg.Validate(); err != nil {
		if cfg.Transport != nil {
			cfg.Transport.Close()
		}
		return nil, err
	}
	cfg.setDefaults()
	if cfg.Self.ID == "" {
		cfg.Self.ID = NewPeerID()
		if cfg.Passive {
			cfg.Self.ID = "watch-" + cfg.Self.ID
		}
	}
	if cfg.Self.CommsURI == nil {
		cfg.Self.CommsURI = cloneURL(cfg.Self.HealthURI)
	}

	g := newGroup(cfg)
	if !cfg.Passive {
		if err := g.prepareAnnouncements(); err != nil {
			g.Close()
			return nil, err
		}
	}

	g.startSelfCheck() // before the owner, which reads its channel

	// Ask who is there before anything else, so the first answers find the
	// receiver ready.
	g.wg.Add(2)
	go g.receive()
	go g.own()
	if err := g.query(ctx); err != nil {
		g.Close()
		return nil, err
	}
	g.log.Debug("joined", "health", cfg.Self.HealthURI, "passive", cfg.Passive)
	return g, nil
}

// newGroup makes a Group from a checked, defaulted Config, with no
// goroutine started.
func newGroup(cfg Config) *Group {
	gctx, cancel := context.WithCancel(context.Background())
	g := &Group{
		cfg:     cfg,
		log:     cfg.Logger.Named("pir").With("group", cfg.Name, "self", cfg.Self.ID),
		ctx:     gctx,
		cancel:  cancel,
		inbox:   make(chan inbound, 256),
		results: make(chan probeResult, 64),
		peers:   make(map[string]*peerState),
		sources: sourceLimiter{rate: cfg.NewPeerRate, burst: float64(cfg.NewPeerBurst), buckets: make(map[netip.Addr]*bucket)},
		answers: sourceLimiter{rate: cfg.AnswerRate, burst: answerBurst, buckets: make(map[netip.Addr]*bucket)},
		subs:    make(map[*subscriber]struct{}),
		closed:  make(chan struct{}),
		epoch:   time.Now().Add(-time.Second),

		stopping:  make(chan struct{}),
		ownedDone: make(chan struct{}),
		done:      make(chan struct{}),
		running:   make(map[*subscriber]*listenerRun),
		updates:   make(chan selfUpdate),
	}
	g.self.Store(&cfg.Self)
	g.pg.neigh, _ = cfg.Transport.(transport.NeighbourConfirmer)
	return g
}

// me is our record as it is now. The Peer is never changed: Update
// replaces it.
func (g *Group) me() *Peer { return g.self.Load() }

// AddListener subscribes l to membership events and returns a function that
// unsubscribes it. l first receives a Joined event for every current
// member, then every change after, so it never misses one unless its queue
// overflows (Config.MaxListenerQueue; see Listener for how events queue).
// After Close, Leave or Shutdown, AddListener does nothing.
func (g *Group) AddListener(l Listener) (remove func()) {
	s := g.newSubscriber(l)
	removeOnce := sync.OnceFunc(func() {
		g.mu.Lock()
		delete(g.subs, s)
		g.mu.Unlock()
	})
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.closed:
		return func() {}
	default:
	}
	for _, m := range g.membersLocked() {
		s.Push(Event{Type: Joined, Member: m, At: m.Joined})
	}
	g.subs[s] = struct{}{}
	g.running[s] = &listenerRun{name: listenerName(l)}
	g.subWG.Add(1)
	go func() {
		defer g.subWG.Done()
		s.Run(removeOnce)
		g.mu.Lock()
		delete(g.running, s)
		g.mu.Unlock()
	}()
	return func() {
		s.Stop()
		removeOnce()
	}
}

// Members returns the joined members, sorted by ID. Peers heard but not yet
// joined are not included.
func (g *Group) Members() []Member {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.membersLocked()
}

func (g *Group) membersLocked() []Member {
	ms := make([]Member, 0, len(g.peers))
	for _, st := range g.peers {
		if st.joined {
			ms = append(ms, st.member)
		}
	}
	slices.SortFunc(ms, func(a, b Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return ms
}

// Member returns the joined member with the given ID.
func (g *Group) Member(id string) (Member, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	st, ok := g.peers[id]
	if !ok || !st.joined {
		return Member{}, false
	}
	return st.member, true
}

// Name returns the group's name.
func (g *Group) Name() string { return g.cfg.Name }

// Done returns a channel that is closed once the Group has stopped (Close,
// Leave or Shutdown) and nothing of it runs any more: its goroutines have
// ended and every listener has returned from its last event. A listener
// that Shutdown abandoned (see ShutdownError) keeps Done open until it
// returns; if it never returns, Done never closes. For code that must
// follow the Group's life, such as a plugin's.
func (g *Group) Done() <-chan struct{} { return g.done }

// Self returns this member as it announces itself.
func (g *Group) Self() Peer { return g.me().clone() }

// Stats returns a snapshot of the Group's counters.
func (g *Group) Stats() Stats {
	s := Stats{
		Received:          g.stats.received.Load(),
		Decoded:           g.stats.decoded.Load(),
		Dropped:           make(map[DropReason]uint64, numDropReasons),
		Sent:              g.stats.sent.Load(),
		SendErrors:        g.stats.sendErrors.Load(),
		ProbesOK:          g.stats.probesOK.Load(),
		ProbesFailed:      g.stats.probesKO.Load(),
		Events:            g.stats.events.Load(),
		EventsMerged:      g.stats.eventsMerged.Load(),
		EventsDropped:     g.stats.eventsDropped.Load(),
		UpdatesHeld:       g.stats.updatesHeld.Load(),
		Confirmations:     g.stats.confirms.Load(),
		Refutations:       g.stats.refutes.Load(),
		Obituaries:        g.stats.obits.Load(),
		SelfClaimsRefuted: g.stats.claimsRefuted.Load(),

		OffersSent:      g.stats.offers.Load(),
		OffersTooLong:   g.stats.offersLong.Load(),
		TransfersServed: g.stats.transfers.Load(),
		PagesSent:       g.stats.pagesSent.Load(),
		PagesReceived:   g.stats.pagesReceived.Load(),
		PingsSent:       g.stats.pingsSent.Load(),
		AcksReceived:    g.stats.acksReceived.Load(),
		PingsFailed:     g.stats.pingsFailed.Load(),
		PingsRefused:    g.stats.pingsRefused.Load(),
	}
	for r := range numDropReasons {
		s.Dropped[r] = g.stats.dropped[r].Load()
	}
	g.mu.RLock()
	for _, st := range g.peers {
		if st.joined {
			s.Members++
		} else {
			s.Pending++
		}
	}
	g.mu.RUnlock()
	return s
}
