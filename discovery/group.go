package discovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/score"
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
	self   Peer
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
}

// peerState is what the owner keeps of one peer: 280 bytes, in the 288-byte
// size class, besides the Member's URIs and the policy's tracker. Its
// times are instants (8 bytes; zero means never), and its flags sit
// together.
type peerState struct {
	member  Member
	health  string // the raw URIs as last announced, to spot updates
	comms   string
	tracker score.Tracker
	confirm *confirmation // other members are being asked whether it is dead
	path    path          // the way the current URIs came

	lastHeard   instant
	pathHeard   instant // when path last brought a message
	probeStart  instant // when the latest probe started
	nextProbe   instant // when the chain's next probe is due; other probe tasks are stale
	lastProbeOK instant // when our latest successful probe ended
	failedStart instant // when our latest failed probe started
	silenceAt   instant // when the silence check is due; other silence tasks are stale

	gen        uint32 // Group-wide unique, renewed when the health URI changes (see task)
	joined     bool   // the Joined event has fired
	probing    bool   // a probe is in flight
	queued     bool   // waiting in Group.waiting for a free probe slot
	lateProbed bool   // probed for this silence already

	extended bool // it speaks the extensions: a confirmation helper (pickHelpers)

	adm peerAdmission // while pending (admit.go)
}

type inbound struct {
	msg     codec.Message
	src     netip.AddrPort
	dst     netip.Addr // invalid when the transport cannot tell
	ifIndex int
	at      time.Time
}

type probeResult struct {
	id      string
	gen     uint32
	err     error
	rtt     time.Duration
	at      time.Time
	src     netip.Addr // the peer's source address when the probe started
	pending bool       // a probe of a pending peer (admit.go's caps)
	suspect bool       // of a pending peer from a suspect source
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
	return &Group{
		cfg:     cfg,
		self:    cfg.Self,
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
	}
}

// prepareAnnouncements encodes our announcement once, or, when our URIs
// name no host, checks that the transport can say which address each link
// has.
func (g *Group) prepareAnnouncements() error {
	unspecified, v4 := unspecifiedHost(g.self.HealthURI)
	if !unspecified {
		unspecified, v4 = unspecifiedHost(g.self.CommsURI)
	}
	if unspecified {
		ls, ok := g.cfg.Transport.(transport.LinkSender)
		if !ok {
			return fmt.Errorf("%w: Self.HealthURI %s names no host, and the transport cannot say which address each interface has; give an address",
				ErrInvalidConfig, g.self.HealthURI)
		}
		g.links, g.v4Only = ls, v4
	}
	b, err := g.encodeSelf(codec.Announce, false)
	if err != nil {
		return fmt.Errorf("discovery: encode announcement: %w", err)
	}
	g.announce = b
	return nil
}

// query sends our first message: a Query, which every member answers.
func (g *Group) query(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("discovery: join: %w", err)
	}
	if !g.cfg.Passive {
		if err := g.sendSelf(codec.Query, false); err != nil {
			return fmt.Errorf("discovery: send query: %w", err)
		}
		return nil
	}
	b, err := g.cfg.Codec.Encode(nil, &codec.Message{Kind: codec.Query, Group: g.cfg.Name, ID: g.self.ID})
	if err != nil {
		return fmt.Errorf("discovery: encode query: %w", err)
	}
	if err := g.send(b); err != nil {
		return fmt.Errorf("discovery: send query: %w", err)
	}
	return nil
}

func (g *Group) encodeSelf(kind codec.Kind, extended bool) ([]byte, error) {
	m := codec.Message{
		Kind:     kind,
		Group:    g.cfg.Name,
		ID:       g.self.ID,
		Health:   g.self.HealthURI.String(),
		Comms:    g.self.CommsURI.String(),
		Meta:     g.self.Meta,
		Extended: extended,
	}
	return g.cfg.Codec.Encode(nil, &m)
}

func (g *Group) send(b []byte) error {
	err := g.cfg.Transport.Send(b)
	g.countSend(err)
	return err
}

func (g *Group) countSend(err error) {
	if err != nil {
		g.stats.sendErrors.Add(1)
		return
	}
	g.stats.sent.Add(1)
}

// receive reads datagrams, decodes them and hands them to the owner. Bad
// ones are counted and dropped here.
func (g *Group) receive() {
	defer g.wg.Done()
	buf := make([]byte, receiveBuffer)
	// in is reused: Decode takes a pointer through an interface, which
	// would move a per-datagram variable to the heap.
	in := new(inbound)
	for {
		pkt, err := g.cfg.Transport.Receive(buf)
		if err != nil {
			if g.ctx.Err() != nil || errors.Is(err, transport.ErrClosed) {
				return
			}
			if errors.Is(err, transport.ErrTruncated) {
				g.stats.drop(DropOversize)
				continue
			}
			g.stats.drop(DropReceiveError)
			g.log.Debug("receive failed", "error", err)
			// Don't spin on an error that repeats.
			select {
			case <-time.After(10 * time.Millisecond):
			case <-g.ctx.Done():
				return
			}
			continue
		}
		if !g.ingest(buf[:pkt.N], pkt, in) || g.full(in) {
			continue
		}
		select {
		case g.inbox <- *in:
		case <-g.ctx.Done():
			return
		}
	}
}

// ingest decodes one datagram into in, counting it, and reports whether the
// owner should see it.
func (g *Group) ingest(b []byte, pkt transport.Packet, in *inbound) bool {
	g.stats.received.Add(1)
	if err := g.cfg.Codec.Decode(b, &in.msg); err != nil {
		g.stats.drop(dropReason(err))
		g.log.Trace("dropped datagram", "from", pkt.Src, "error", err)
		return false
	}
	g.stats.decoded.Add(1)
	switch {
	case in.msg.Group != g.cfg.Name:
		g.stats.drop(DropForeignGroup)
		return false
	case in.msg.ID == g.self.ID:
		g.stats.drop(DropSelf)
		return false
	}
	in.src, in.dst, in.ifIndex, in.at = pkt.Src, pkt.Dst, pkt.IfIndex, time.Now()
	return true
}

// full drops, in the receiver, announcements of new peers while the Group
// cannot take any: under a flood of forged peers the owner then never sees
// them, and keeps up with the real members' announcements.
func (g *Group) full(in *inbound) bool {
	if !g.noRoom.Load() || in.msg.Kind == codec.Goodbye {
		return false
	}
	g.mu.RLock()
	_, known := g.peers[in.msg.ID]
	g.mu.RUnlock()
	if !known && in.msg.Health != "" {
		g.stats.drop(DropPeerCap)
		return true
	}
	return false
}

// updateRoom tells the receiver whether new peers can be taken. The owner
// calls it whenever the peer counts change.
func (g *Group) updateRoom() {
	// A full pending pool makes room for new peers (track): only a table
	// full of members refuses them.
	g.noRoom.Store(len(g.peers) >= g.cfg.MaxPeers && g.pending == 0)
}

// dropReason says under which reason a Decode error is counted: the one
// its codec.DropReasoner names, or DropRejected when it names none we know.
func dropReason(err error) DropReason {
	var dr codec.DropReasoner
	if errors.As(err, &dr) {
		if r, ok := dropReasons[dr.DropReason()]; ok {
			return r
		}
	}
	return DropRejected
}

// own is the goroutine that owns the membership: it handles messages,
// probe results and timed tasks, one at a time.
func (g *Group) own() {
	defer g.wg.Done()
	now := time.Now()
	if g.announce != nil {
		g.sched.push(task{at: g.at(now.Add(g.announceDelay())), kind: taskAnnounce})
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if at, ok := g.sched.next(); ok {
			timer.Reset(time.Until(g.time(at)))
		} else {
			timer.Stop()
		}
		select {
		case <-g.ctx.Done():
			return
		case in := <-g.inbox:
			g.handle(in)
		case r := <-g.results:
			g.handleProbe(r)
		case <-timer.C:
		}
		g.runDue(time.Now())
	}
}

func (g *Group) announceDelay() time.Duration {
	d := g.cfg.AnnounceInterval
	if j := g.cfg.AnnounceJitter; j > 0 {
		d = time.Duration(float64(d) * (1 + j*(2*rand.Float64()-1)))
	}
	return d
}

func (g *Group) runDue(now time.Time) {
	due := g.at(now)
	for {
		at, ok := g.sched.next()
		if !ok || at > due {
			return
		}
		t := g.sched.pop()
		switch t.kind {
		case taskAnnounce:
			if err := g.sendSelf(codec.Announce, false); err != nil {
				g.log.Debug("announce failed", "error", err)
			}
			g.sched.push(task{at: g.at(now.Add(g.announceDelay())), kind: taskAnnounce})
		case taskProbe:
			if st := g.peers[t.id]; st != nil && st.gen == t.gen && t.at == st.nextProbe {
				st.nextProbe = 0
				g.probe(t.id, st, now)
			}
		case taskSilence:
			if st := g.peers[t.id]; st != nil && st.gen == t.gen && t.at == st.silenceAt {
				g.silence(t.id, st, now)
			}
		case taskConfirm, taskConfirmed:
			if st := g.peers[t.id]; st != nil && st.confirm != nil && st.confirm.seq == t.gen {
				if t.kind == taskConfirm {
					g.ask(t.id, st, now) // those not answered yet, halfway to the deadline
				} else {
					g.confirmed(t.id, st, now)
				}
			}
		case taskRound:
			g.roundOn = false
			g.nextInRound(now)
		case taskProbeSlot:
			g.slotArmed = false
			g.startWaiting(now)
		case taskUpdate:
			g.releaseUpdates(t.id, t.gen, now)
		case taskAnswer:
			if g.answerDue {
				g.answerDue = false
				g.answerSoon(now)
			}
		}
	}
}

func (g *Group) handle(in inbound) {
	m := &in.msg
	st := g.peers[m.ID]
	switch m.Kind {
	case codec.Goodbye:
		if st != nil {
			g.remove(m.ID, st, Goodbye, in.at)
		}
		return
	case codec.Query:
		g.answer(in)
		if m.Health == "" && m.Comms == "" {
			return // a watcher's query: nobody to track
		}
	case codec.Confirm:
		g.answerConfirm(in)
		return
	case codec.Evidence:
		// A vouch (probed=0, by multicast) about a peer joined here
		// already, or about ourselves, is news we have: it is neither
		// evidence nor a forgery.
		vouch := m.Probed == 0 && in.dst.IsValid() && in.dst.IsMulticast()
		if !g.takeVouch(in) && !vouch {
			g.takeEvidence(in)
		}
		return
	case codec.Obituary:
		g.takeObituary(in)
		return
	}

	if st == nil {
		g.track(in)
		return
	}
	// A known peer: the hot path. No allocation unless something changed.
	if speaksExtensions(m) && sameAddr(st.member.Addr, in.src) {
		st.extended = true
	}
	heard := g.at(in.at)
	st.lastHeard = heard
	st.tracker.Observe(score.Observation{Event: score.Heartbeat, At: in.at})
	if st.lateProbed {
		g.armSilence(m.ID, st, in.at) // a new silence may be late again
	}
	if !st.joined {
		g.heardPending(m.ID, st, in.at)
	}
	p := pathOf(in)
	primary := p == st.path
	if primary {
		st.pathHeard = heard
	}
	changed := m.Health != st.health || m.Comms != st.comms || !maps.Equal(m.Meta, st.member.Meta)
	if changed && (primary || in.at.Sub(g.time(st.pathHeard)) > 3*g.cfg.AnnounceInterval) {
		st.path, st.pathHeard = p, heard
		g.update(st, in)
		return
	}
	// Nothing new; or the same member heard another way (IPv6 as well as
	// IPv4, a second interface), announcing the address it has there.
	// Keep the way we know while it is heard, so the member does not flap
	// between its addresses.
	g.mu.Lock()
	if primary {
		st.member.Addr, st.member.IfIndex = in.src, in.ifIndex
	}
	st.member.LastSeen = in.at
	g.mu.Unlock()
	if !primary {
		g.noteAlt(m.ID, st, in.src)
	}
}

// path is the way a message reached us: the interface and address family.
type path struct {
	ifIndex int32 // interface indexes are 32-bit; 8 bytes keep peerState in its size class
	ipv4    bool
}

func pathOf(in inbound) path { return path{int32(in.ifIndex), in.src.Addr().Unmap().Is4()} }

// queryHeard is a query answered: from whom, and when.
type queryHeard struct {
	id string
	at time.Time
}

// queryCopies is how soon after a query another from the same member is
// taken for a copy of it, heard by another path (IPv4 and IPv6, a second
// interface): a member sends one query, when it starts.
const queryCopies = 100 * time.Millisecond

// answer replies to a Query with our announcement, by multicast to the
// group as every announcement goes, never by unicast to the query's source,
// which a forger chooses: one forged query then sends nothing to a third
// party. Answers are coalesced (see answerSoon). It answers one copy of a
// query: the others, heard by another path (IPv4 and IPv6, a second
// interface), are answered by the same announcement, which goes out on
// every link.
func (g *Group) answer(in inbound) {
	if g.announce == nil || g.answeredCopy(in) {
		return
	}
	g.answerSoon(in.at)
}

// answeredCopy reports whether in is a copy of a query answered already,
// and if not, remembers it.
func (g *Group) answeredCopy(in inbound) bool {
	for _, q := range g.queries {
		if q.id == in.msg.ID && in.at.Sub(q.at) < queryCopies {
			return true
		}
	}
	g.queries[g.nextQuery] = queryHeard{id: in.msg.ID, at: in.at}
	g.nextQuery = (g.nextQuery + 1) % len(g.queries)
	return false
}

// answerBurst is the burst Config.AnswerRate allows.
const answerBurst = 32

// mayAnswer reports whether the source of in may have an answer now, and
// counts the request when it may not.
func (g *Group) mayAnswer(in inbound) bool {
	if g.answers.allow(in.src.Addr(), in.at) {
		return true
	}
	g.stats.drop(DropAnswerLimited)
	return false
}

// parsePeer checks a message's URIs for use: they parse, the health URI's
// scheme has a prober, and its host is one we may probe (checkHealthHost,
// Config.ProbeFilter). Link-local addresses get the zone of the interface
// the message came in on.
func (g *Group) parsePeer(in *inbound) (Peer, error) {
	m := &in.msg
	h, err := url.Parse(m.Health)
	if err != nil {
		return Peer{}, err
	}
	if h.Scheme == "" || h.Host == "" {
		return Peer{}, fmt.Errorf("health URI %q has no scheme or host", m.Health)
	}
	if h.User != nil {
		return Peer{}, fmt.Errorf("%w: health URI has userinfo", errNotAllowed)
	}
	if s, ok := g.cfg.Prober.(healthcheck.SchemeSupporter); ok && !s.Supports(h.Scheme) {
		return Peer{}, fmt.Errorf("%w: %q", healthcheck.ErrUnsupportedScheme, h.Scheme)
	}
	c, err := url.Parse(m.Comms)
	if err != nil {
		return Peer{}, err
	}
	localizeZone(h, in)
	localizeZone(c, in)
	if err := checkHealthHost(h.Hostname(), in.src.Addr(), g.cfg.ForeignHealthHosts); err != nil {
		return Peer{}, fmt.Errorf("%w: %w", errNotAllowed, err)
	}
	if f := g.cfg.ProbeFilter; f != nil {
		if err := f(h, in.src); err != nil {
			return Peer{}, fmt.Errorf("%w: %w", errNotAllowed, err)
		}
	}
	return Peer{ID: m.ID, HealthURI: h, CommsURI: c, Meta: m.Meta}, nil
}

// errNotAllowed marks a health URI refused as a probe target.
var errNotAllowed = errors.New("not allowed")

// dropPeer counts an announcement whose peer could not be taken.
func (g *Group) dropPeer(err error) {
	if errors.Is(err, errNotAllowed) {
		g.stats.drop(DropNotAllowed)
	} else {
		g.stats.drop(DropBadURI)
	}
}

// track starts tracking a peer heard for the first time.
func (g *Group) track(in inbound) {
	full := len(g.peers) >= g.cfg.MaxPeers || g.pending >= g.cfg.MaxPending
	if full && g.pending == 0 {
		g.stats.drop(DropPeerCap) // members only: nothing to make room from
		return
	}
	if !g.sources.allow(in.src.Addr(), in.at) {
		g.stats.drop(DropRateLimited)
		return
	}
	p, err := g.parsePeer(&in)
	if err != nil {
		g.dropPeer(err)
		g.log.Debug("ignoring peer", "peer", in.msg.ID, "from", in.src, "error", err)
		return
	}
	if full && !g.makeRoom(in.at) {
		g.stats.drop(DropPeerCap)
		return
	}
	st := &peerState{
		member:    Member{Peer: p, Addr: in.src, IfIndex: in.ifIndex, LastSeen: in.at, Health: 1},
		health:    in.msg.Health,
		comms:     in.msg.Comms,
		tracker:   g.cfg.Policy.Track(in.at),
		lastHeard: g.at(in.at),
		path:      pathOf(in),
		pathHeard: g.at(in.at),
		gen:       g.newGen(),
		extended:  speaksExtensions(&in.msg),
	}
	st.tracker.Observe(score.Observation{Event: score.Heartbeat, At: in.at})
	a := st.tracker.Assess(in.at)
	st.member.Health, st.member.Verdict = a.Health, a.Verdict
	g.mu.Lock()
	g.peers[in.msg.ID] = st
	g.pending++
	defer g.updateRoom()
	if g.cfg.JoinBeforeProbe {
		g.join(st, in.at)
	}
	g.mu.Unlock()
	g.log.Debug("tracking peer", "peer", p.ID, "health", p.HealthURI, "from", in.src)
	if !st.joined {
		g.tracked(in.msg.ID)
	}
	g.armSilence(in.msg.ID, st, in.at)
	g.probe(in.msg.ID, st, in.at)
}

// update applies new URIs or metadata from a known peer.
func (g *Group) update(st *peerState, in inbound) {
	p, err := g.parsePeer(&in)
	if err != nil {
		g.dropPeer(err)
		g.log.Debug("ignoring update", "peer", in.msg.ID, "error", err)
		return
	}
	newHealth := in.msg.Health != st.health
	g.mu.Lock()
	prev := st.member
	st.member.Peer = p
	st.member.Addr, st.member.IfIndex, st.member.LastSeen = in.src, in.ifIndex, in.at
	st.health, st.comms = in.msg.Health, in.msg.Comms
	if st.joined {
		g.updated(in.msg.ID, st, prev, in.at)
	}
	g.mu.Unlock()
	if newHealth {
		// A new address is a new endpoint: judge it afresh, at once.
		// Probes of the old one still in flight are ignored.
		st.gen = g.newGen()
		st.probing, st.confirm = false, nil
		delete(g.askers, in.msg.ID)
		st.nextProbe, st.lastProbeOK, st.failedStart = 0, 0, 0
		st.tracker = g.cfg.Policy.Track(in.at)
		st.tracker.Observe(score.Observation{Event: score.Heartbeat, At: in.at})
		g.armSilence(in.msg.ID, st, in.at)
		g.probe(in.msg.ID, st, in.at)
	}
}

// probe starts a probe of st, or queues it while the cap on probes in
// flight or on the probe rate is reached. Probes of one peer form a chain:
// each result schedules the next, ProbeInterval after the previous probe
// started (at once if that has passed), so a probe that runs as long as the
// interval delays the next one by nothing.
//
// A pending peer is probed only as admit.go allows (mayProbePending), and
// waits in lines of its own, behind members (queuePending).
func (g *Group) probe(id string, st *peerState, now time.Time) {
	if !g.assess(id, st, now) {
		return
	}
	switch {
	case st.probing, st.queued:
	case !st.joined:
		if g.mayProbePending(id, st, now) {
			g.queuePending(id, st, now)
		}
	case len(g.waiting[0])+len(g.waiting[1]) > 0 || !g.mayStartProbe(now):
		// Wait in line: joined members before pending peers, so that a
		// flood of forged peers cannot starve the real ones.
		st.queued = true
		q := 1
		if st.joined {
			q = 0
		}
		g.waiting[q] = append(g.waiting[q], id)
		g.startWaiting(now)
	default:
		g.startProbe(id, st, false)
	}
}

// mayStartProbe reports whether a probe may start now, under both caps, and
// if so takes its token.
func (g *Group) mayStartProbe(now time.Time) bool {
	if g.inflight >= g.cfg.MaxProbes {
		return false // a result will free a slot and call startWaiting
	}
	if g.cfg.MaxProbeRate < 0 {
		return true
	}
	g.adm.rateMu.Lock()
	defer g.adm.rateMu.Unlock()
	if g.probeRate.take(now, g.cfg.MaxProbeRate, float64(g.cfg.MaxProbes)) {
		return true
	}
	if !g.slotArmed { // wake when the next token is due
		g.slotArmed = true
		g.sched.push(task{at: g.at(now.Add(g.probeRate.wait(g.cfg.MaxProbeRate))), kind: taskProbeSlot})
	}
	return false
}

// startProbe starts a probe of st. suspect says that st is pending and
// its source suspect (admit.go's tiers).
func (g *Group) startProbe(id string, st *peerState, suspect bool) {
	now := time.Now()
	st.probeStart = g.at(now)
	st.probing = true
	g.inflight++
	r := probeResult{id: id, gen: st.gen, src: st.member.Addr.Addr(), pending: !st.joined, suspect: suspect}
	if r.pending {
		g.adm.inflight++
		g.source(r.src, now).inflight++
	}
	if suspect {
		g.adm.suspects++
	}
	g.wg.Add(1)
	go g.runProbe(r, st.member.HealthURI)
}

// startWaiting starts the probes that waited for a free slot or token:
// joined members first, oldest first; then pending peers (startPending).
func (g *Group) startWaiting(now time.Time) {
	for q := range g.waiting {
		for len(g.waiting[q]) > 0 {
			id := g.waiting[q][0]
			st := g.peers[id]
			if st == nil || !st.queued || st.probing {
				// Gone, or already probing: drop its place in line.
				g.waiting[q] = g.waiting[q][1:]
				if st != nil {
					st.queued = false
				}
				continue
			}
			if !g.mayStartProbe(now) {
				return
			}
			g.waiting[q][0] = ""
			g.waiting[q] = g.waiting[q][1:]
			st.queued = false
			g.startProbe(id, st, false)
		}
		g.waiting[q] = nil // let the backing array go
	}
	g.startPending(now)
}

// runProbe runs one probe and hands r, its result, to the owner. A pending
// peer's probe is one connection attempt (healthcheck.WithoutRetry); every
// further attempt of a member's probe takes a token of MaxProbeRate.
func (g *Group) runProbe(r probeResult, target *url.URL) {
	defer g.wg.Done()
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.ProbeTimeout)
	if r.pending {
		ctx = healthcheck.WithoutRetry(ctx)
	}
	if g.cfg.MaxProbeRate >= 0 {
		ctx = healthcheck.WithAttemptGate(ctx, g.takeAttempt)
	}
	start := time.Now()
	r.err = g.cfg.Prober.Probe(ctx, target)
	cancel()
	r.rtt, r.at = time.Since(start), time.Now()
	select {
	case g.results <- r:
	case <-g.ctx.Done():
	}
}

func (g *Group) handleProbe(r probeResult) {
	g.inflight--
	g.probeDone(r)
	defer g.startWaiting(r.at)
	if r.err != nil {
		g.stats.probesKO.Add(1)
	} else {
		g.stats.probesOK.Add(1)
	}
	st := g.peers[r.id]
	if st == nil || st.gen != r.gen {
		return
	}
	st.probing = false
	if r.err != nil && !st.joined && !g.pendingFailed(r.id, st, r.at) {
		return
	}
	o := score.Observation{Event: score.ProbeOK, At: r.at, RTT: r.rtt}
	if r.err != nil {
		o.Event = score.ProbeFailed
		st.failedStart = st.probeStart
		delete(g.askers, r.id)
		g.log.Debug("probe failed", "peer", r.id, "error", r.err)
	} else {
		st.lastProbeOK = g.at(r.at)
		g.tellAskers(r.id, st, r.at)
	}
	st.tracker.Observe(o)
	if !g.assess(r.id, st, r.at) {
		return
	}
	if g.chained(st) {
		interval := g.cfg.ProbeInterval
		if st.member.Verdict != score.Healthy {
			interval = g.cfg.SuspectProbeInterval
		}
		next := g.time(st.probeStart).Add(interval)
		if next.Before(r.at) {
			next = r.at
		}
		g.probeAt(r.id, st, next)
	}
	if r.err == nil && !st.joined {
		if st.adm.vouch { // first, so that the others probe it the sooner
			st.adm.vouch = false
			g.sendVouch(r.id, st, r.at)
		}
		g.mu.Lock()
		g.join(st, r.at)
		g.mu.Unlock()
		g.updateMode(r.at)
	}
}

// probeAt schedules st's next probe in its chain; an earlier one still
// scheduled becomes stale.
func (g *Group) probeAt(id string, st *peerState, at time.Time) {
	st.nextProbe = g.at(at)
	g.sched.push(task{at: st.nextProbe, kind: taskProbe, id: id, gen: st.gen})
}

// assess asks the policy about st and acts on the answer. It reports
// whether st is still tracked.
func (g *Group) assess(id string, st *peerState, now time.Time) bool {
	a := st.tracker.Assess(now)
	switch {
	case a.Verdict == score.Dead && st.confirm == nil && !g.startConfirm(id, st, now):
		g.remove(id, st, Failed, now)
		return false
	case a.Verdict == score.Dead:
		a.Verdict = score.Suspect // until the other members have answered
	case st.confirm != nil:
		st.confirm = nil // the policy changed its mind: a probe answered
	}
	if a.Health == st.member.Health && a.Verdict == st.member.Verdict {
		return true
	}
	g.mu.Lock()
	prev := st.member
	st.member.Health, st.member.Verdict = a.Health, a.Verdict
	if st.joined {
		g.emit(Event{Type: HealthChanged, Member: st.member, Prev: prev, At: now})
	}
	g.mu.Unlock()
	return true
}

// join marks st joined and emits Joined. g.mu must be held.
func (g *Group) join(st *peerState, now time.Time) {
	g.pending--
	g.updateRoom()
	st.joined = true
	st.member.Joined = now
	g.emit(Event{Type: Joined, Member: st.member, At: now})
}

// newGen returns a generation no peer state has had: a peer removed and
// heard again must not take the results of probes started in its earlier
// life for its own.
func (g *Group) newGen() uint32 {
	g.gens++
	return g.gens
}

func (g *Group) remove(id string, st *peerState, why Reason, now time.Time) {
	g.mu.Lock()
	delete(g.peers, id)
	if !st.joined {
		g.pending--
	}
	g.updateRoom()
	if st.joined {
		g.emit(Event{Type: Left, Member: st.member, Reason: why, At: now})
	}
	g.mu.Unlock()
	g.log.Debug("peer removed", "peer", id, "reason", why, "joined", st.joined)
	st.confirm = nil
	delete(g.askers, id)
	g.updateMode(now)
}

// emit queues e for every listener. g.mu must be held.
func (g *Group) emit(e Event) {
	if e.Type == Left {
		delete(g.holds, e.Member.ID) // its rate limit ends with it
	}
	g.stats.events.Add(1)
	for s := range g.subs {
		s.Push(e)
	}
}

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
func (g *Group) Self() Peer { return g.self.clone() }

// Stats returns a snapshot of the Group's counters.
func (g *Group) Stats() Stats {
	s := Stats{
		Received:      g.stats.received.Load(),
		Decoded:       g.stats.decoded.Load(),
		Dropped:       make(map[DropReason]uint64, numDropReasons),
		Sent:          g.stats.sent.Load(),
		SendErrors:    g.stats.sendErrors.Load(),
		ProbesOK:      g.stats.probesOK.Load(),
		ProbesFailed:  g.stats.probesKO.Load(),
		Events:        g.stats.events.Load(),
		EventsMerged:  g.stats.eventsMerged.Load(),
		EventsDropped: g.stats.eventsDropped.Load(),
		UpdatesHeld:   g.stats.updatesHeld.Load(),
		Confirmations: g.stats.confirms.Load(),
		Refutations:   g.stats.refutes.Load(),
		Obituaries:    g.stats.obits.Load(),
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
