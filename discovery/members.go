package discovery

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/score"
)

// This file holds the membership table: a peer's state, how a new peer is
// tracked and a known one updated, and how a member joins and leaves (the
// events listeners see). admit.go holds how a pending peer is admitted.

// peerState is what the owner keeps of one peer: 288 bytes, the whole 288-byte
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
	pings    bool // it answers pings: its ann or qry said so (codec.Message.Pings)

	// What its own record says of it (docs/design/frugal.md, sections 2.2
	// and 2.3.4): the record's version, and its count of consecutive
	// failed checks of its own health, capped at 255.
	healthFails uint8
	version     uint32

	adm peerAdmission // while pending (admit.go)
}

// path is the way a message reached us: the interface and address family.
type path struct {
	ifIndex int32 // interface indexes are 32-bit; 8 bytes keep peerState in its size class
	ipv4    bool
}

func pathOf(in inbound) path { return path{int32(in.ifIndex), in.src.Addr().Unmap().Is4()} }

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
	if g.deadByReport(&in.msg, in.at) {
		g.log.Trace("ignoring peer that reports itself dead", "peer", in.msg.ID, "from", in.src)
		return
	}
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
		pings:     saysPings(&in.msg),
	}
	st.tracker.Observe(score.Observation{Event: score.Heartbeat, At: in.at})
	g.takeRecord(st, &in.msg, in.at) // a member failing its own checks is judged at once
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
	if st.joined {
		g.welcomeJoin(in.msg.ID, st, in.at)
	}
	g.log.Debug("tracking peer", "peer", p.ID, "health", p.HealthURI, "from", in.src)
	if !st.joined {
		g.tracked(in.msg.ID)
		if g.answersWho(&in) {
			// It answers our who=1: the others know it, so nobody will
			// vouch for it. One probe of ours admits it (repair.go).
			st.admitByOwnProbe(in.at)
		}
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
		g.replayRecord(st, in.at)
		g.armSilence(in.msg.ID, st, in.at)
		g.probe(in.msg.ID, st, in.at)
	}
}

// join marks st joined and emits Joined. g.mu must be held.
func (g *Group) join(st *peerState, now time.Time) {
	g.pending--
	g.updateRoom()
	st.joined = true
	st.member.Joined = now
	g.ringChanged()
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
	prev := g.groupSize()
	g.mu.Lock()
	delete(g.peers, id)
	if !st.joined {
		g.pending--
	} else {
		g.ringChanged()
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
	g.fewer(prev, now)
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

// members is the number of joined members.
func (g *Group) members() int { return len(g.peers) - g.pending }
