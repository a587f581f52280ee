package sim_test

import (
	"cmp"
	minheap "container/heap"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
)

// fcrowd is the modeled members first to first+size-1 of a simulated group
// run by the frugal engine (docs/design/frugal.md, section 6): the
// counterpart of crowd for Groups with PingInterval on. One goroutine (run)
// drives it on the bubble's clock. What it mirrors, and where:
//
//   - pings (discovery/ping.go): each crowd member pings every member once
//     in N-1 PingIntervals, by the ring rotation (nextPing: in slot s, the
//     member s mod (N-1) + 1 places after it in the ring of all members by
//     ringRank, at its phase of the interval); only its pings of real
//     members are datagrams (turn gives when; the crowd sends no welcome
//     pings, one per member joined, which only the 20 newcomers would get),
//     resent at PingTimeout/3 and 2/3,
//     failed at PingTimeout, or RefusedGrace after the first send when the
//     target's host refuses (a killed member). Pings of real members are
//     acked from the target's address with the nonce, with who=1 when the
//     pinger is not a member here (takePing).
//   - deaths (ping.go, liveness.go): a failed ping of the victim starts a
//     confirmation asking Confirmers random members (crowd or real: real
//     ones get cfm datagrams), which ping it themselves and answer evd
//     failed=1 when that fails; the confirmation ends when all said failed
//     or at ConfirmTimeout; with no loss one round decides (rounds()), and
//     the obituary goes three times 100 ms apart with since; every member
//     removes the victim ObituaryGrace after the first copy it takes unless
//     it heard the victim after since (suspect, graceOver). A crowd member
//     named by an obituary refutes it by multicast, twice 100 ms apart.
//   - announcements (rtcp.go): each member announces every T(N) × U(0.5,
//     1.5), T(N) = max(AnnounceInterval, N / AnnounceRate), with forward
//     reconsideration when its timer fires.
//   - joins (transfer.go, admit.go): the crowd member that ranks F or S for
//     a pinging query (offerRank) sends an offer with a cookie; a pull with
//     the cookie gets a page of the crowd's table (crowd members and the real
//     members it holds joined), within StateRate's token bucket (a pull that
//     finds no token waits for one, as a Group's does); F probes the
//     newcomer and multicasts the vouch.
//   - health reports (selfcheck.go): a crowd member told to turn unhealthy
//     multicasts its announcement with h=1 and a new v, twice 100 ms apart.
//
// The model's limits: crowd members do not ping each other (those pings
// carry no datagram to a real member), nor track each other; the LAN loses
// nothing, so the rounds adapted to loss stay at one and only the victim
// is ever suspected; while a crowd member's grace for the victim runs it
// does not start another death of it; reverse reconsideration is not
// modeled (N changes by a few members in a run).
type fcrowd struct {
	cfg    discovery.Config
	codec  pipe.Codec
	lan    *simLAN
	health *fakeHealth
	first  int
	size   int
	wake   chan struct{}
	secret []byte

	inMu  sync.Mutex
	inbox []crowdIn

	mu       sync.Mutex
	start    time.Time
	events   fEvents
	internal []crowdIn
	out      []simOut
	seq      uint64

	annLast []time.Time
	annU    []float64
	annAt   []time.Time // the pending announcement event's time
	version []uint32
	fails   []int
	ann     [][]byte
	refuted []time.Time
	checked []time.Time // when each last reported a self-check
	healthy []bool      // its health check passes

	reals   []*freal // by real index: the order the crowd first heard them
	byID    map[string]*freal
	flights map[fkey]*fflight
	tokens  map[int]*fbucket // page tokens of the members that serve pages
	queued  map[int][]fpull  // pulls waiting for a page token, by member
	ring    map[string]int   // each member's place in ringIDs; nil: to be made (makeRing)
	ringIDs []string         // all members by ringRank
	snap    *fsnap

	victim *freal
	epoch  uint64
	views  []fview

	logOn bool
	log   map[int][]wireEvent // per crowd member, while logOn

	stats fstats
}

// freal is a real member as the crowd knows it.
type freal struct {
	id        string
	idx       int
	addr      netip.AddrPort
	joined    bool
	joinedAt  time.Time
	lastHeard time.Time // its latest multicast
	gone      bool
	slot      int64 // the slot of its next ping by the crowd's ring rotation
}

type fkey struct{ j, r int }

// fflight is a crowd member's ping of a real member in flight.
type fflight struct {
	seq     uint64
	nonce   uint32
	start   time.Time
	helper  bool // asked by a confirmation (pingHelper), not the round's
	refused bool
}

// fview is one crowd member's state about the victim.
type fview struct {
	removed    bool
	removedAt  time.Time
	heard      time.Time // its latest unicast to this member (ack, ping)
	lastAck    time.Time
	dying      bool
	since      time.Time
	confirm    *fconfirm
	askers     []netip.AddrPort
	graceUntil time.Time
	graceSince time.Time
}

type fconfirm struct {
	seq              uint64
	since            time.Time
	asked            []helper
	answered, failed []bool
}

type fbucket struct {
	tokens float64
	at     time.Time
}

// fsnap is the crowd's table as pages.
type fsnap struct {
	pages [][]codec.Entry
}

// fstats counts what the crowd did.
type fstats struct {
	announcements, pings, pingsFailed, acks, whoAcks uint64
	offers, offersTooLong, pages, pullsDropped       uint64
	badCookies, vouches, admittedByWho               uint64
	confirms, refutes, cfmToReal, evdToReal          uint64
	cfmAnswered, failedSent, obitsSent, obitsTaken   uint64
	refutations, healthReports, undecodable          uint64
	encodeFailed, removed                            uint64
}

type fKind uint8

const (
	fAnnounce fKind = iota + 1
	fAnnounceCopy
	fPing
	fResend
	fPingDue
	fConfirmAsk
	fConfirmed
	fObit
	fGrace
	fRefute
	fHealth
	fHealthy
	fServe
)

type fEvent struct {
	at    time.Time
	kind  fKind
	j, r  int
	seq   uint64
	epoch uint64
	n     int
}

type fEvents []fEvent

func (h fEvents) Len() int           { return len(h) }
func (h fEvents) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h fEvents) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *fEvents) Push(e any)        { *h = append(*h, e.(fEvent)) }
func (h *fEvents) Pop() any {
	s := *h
	e := s[len(s)-1]
	*h = s[:len(s)-1]
	return e
}

// wireEvent is a datagram a member sent or received, for the burst figure.
type wireEvent struct {
	at    time.Time
	bytes int
}

// frugalConfig is the real members' and the crowd's Config: the defaults
// with the frugal engine on.
func frugalConfig() discovery.Config {
	cfg := discovery.DefaultConfig("web", nil)
	cfg.PingInterval = time.Second
	cfg.HealthInterval = time.Second
	return cfg.WithDefaults()
}

// newFCrowd makes members first to n-1, each with a random point of its
// announcement interval, as members that have been there a while.
func newFCrowd(t *testing.T, lan *simLAN, health *fakeHealth, first, n int) *fcrowd {
	cfg := frugalConfig()
	size := n - first
	c := &fcrowd{
		cfg: cfg, lan: lan, health: health, first: first, size: size,
		wake: make(chan struct{}, 1), start: time.Now(), secret: make([]byte, 32),
		annLast: make([]time.Time, size), annU: make([]float64, size), annAt: make([]time.Time, size),
		version: make([]uint32, size), fails: make([]int, size), ann: make([][]byte, size),
		refuted: make([]time.Time, size), checked: make([]time.Time, size), healthy: make([]bool, size),
		byID: map[string]*freal{}, flights: map[fkey]*fflight{}, tokens: map[int]*fbucket{}, queued: map[int][]fpull{},
	}
	for i := range c.secret {
		c.secret[i] = byte(rand.Uint32())
	}
	wait := c.announceWait(n)
	for j := range size {
		c.version[j], c.healthy[j] = 1, true
		c.encodeAnn(j)
		require.NotNil(t, c.ann[j])
		// Stationary: the interval now under way is drawn length-biased
		// (density ∝ u on [0.5, 1.5]) and we stand uniformly within it.
		c.annU[j] = math.Sqrt(0.25 + 2*rand.Float64())
		d := time.Duration(float64(wait) * c.annU[j])
		c.annLast[j] = c.start.Add(-rand.N(d))
		c.annAt[j] = onGrid(c.annLast[j].Add(d))
		c.push(fEvent{at: c.annAt[j], kind: fAnnounce, j: j})
	}
	return c
}

func (c *fcrowd) name(j int) string          { return simName(c.first + j) }
func (c *fcrowd) addr(j int) netip.AddrPort  { return simAddr(c.first + j) }
func (c *fcrowd) index(a netip.AddrPort) int { return simAddrIndex(a) - c.first }
func (c *fcrowd) push(e fEvent)              { minheap.Push(&c.events, e) }
func (c *fcrowd) isCrowd(id string) (int, bool) {
	j := simIndex(id) - c.first
	return j, j >= 0 && j < c.size && c.name(j) == id
}
func (c *fcrowd) has(a netip.AddrPort) bool { j := c.index(a); return j >= 0 && j < c.size }
func (c *fcrowd) announceWait(n int) time.Duration {
	return max(c.cfg.AnnounceInterval, time.Duration(float64(n)/c.cfg.AnnounceRate*float64(time.Second)))
}

// members is N: the crowd and the real members it holds joined.
func (c *fcrowd) members() int {
	n := c.size
	for _, r := range c.reals {
		if r.joined && !r.gone {
			n++
		}
	}
	return n
}

func (c *fcrowd) encode(m *codec.Message) []byte {
	m.Group = c.cfg.Name
	b, err := c.codec.Encode(nil, m)
	if err != nil {
		c.stats.encodeFailed++
		return nil
	}
	return b
}

// encodeAnn is member j's announcement as a pinging Group sends it
// (sendSelf, selfArgs).
func (c *fcrowd) encodeAnn(j int) {
	h := healthURI(c.name(j)).String()
	c.ann[j] = c.encode(&codec.Message{Kind: codec.Announce, ID: c.name(j), Health: h, Comms: h,
		Pings: true, Version: c.version[j], HealthFails: c.fails[j]})
}

func (c *fcrowd) receive(d crowdIn) {
	c.inMu.Lock()
	c.inbox = append(c.inbox, d)
	c.inMu.Unlock()
	c.poke()
}

func (c *fcrowd) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *fcrowd) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if at, ok := c.step(time.Now()); ok {
			timer.Reset(time.Until(at))
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-timer.C:
		}
	}
}

// step does what is due at now, as crowd.step does.
func (c *fcrowd) step(now time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		did := false
		for len(c.events) > 0 && !c.events[0].at.After(now) {
			c.handleEvent(minheap.Pop(&c.events).(fEvent), now)
			did = true
		}
		c.inMu.Lock()
		in := c.inbox
		c.inbox = nil
		c.inMu.Unlock()
		in = append(in, c.internal...)
		c.internal = nil
		for _, d := range in {
			if c.logOn && d.to >= 0 && d.from < 0 {
				c.log[d.to] = append(c.log[d.to], wireEvent{now, len(d.b)})
			}
			c.handleDatagram(d, now)
			did = true
		}
		if !did {
			break
		}
	}
	if len(c.out) > 0 {
		if c.logOn {
			for _, o := range c.out {
				if j := c.index(o.src); o.dst.IsValid() && j >= 0 && j < c.size {
					c.log[j] = append(c.log[j], wireEvent{now, len(o.b)})
				}
			}
		}
		c.lan.fromCrowd(c.out)
		c.out = nil
	}
	if len(c.events) == 0 {
		return time.Time{}, false
	}
	return c.events[0].at, true
}

func (c *fcrowd) handleEvent(e fEvent, now time.Time) {
	switch e.kind {
	case fAnnounce:
		if e.at.Equal(c.annAt[e.j]) {
			c.announceDue(e.j, now)
		}
	case fAnnounceCopy, fRefute:
		c.out = append(c.out, simOut{b: c.ann[e.j], src: c.addr(e.j)})
		c.stats.announcements++
	case fPing:
		c.roundTick(e.r, now)
	case fHealth:
		c.healthy[e.j] = false
		c.healthReport(e.j, now)
	case fHealthy:
		c.healthy[e.j] = true
		c.healthReport(e.j, now)
	case fServe:
		c.serveQueued(e.j, now)
	case fResend:
		if f := c.flights[fkey{e.j, e.r}]; f != nil && f.seq == e.seq {
			c.sendPing(e.j, c.reals[e.r], f)
		}
	case fPingDue:
		if f := c.flights[fkey{e.j, e.r}]; f != nil && f.seq == e.seq {
			delete(c.flights, fkey{e.j, e.r})
			c.stats.pingsFailed++
			c.pingFailed(e.j, c.reals[e.r], f, now)
		}
	case fConfirmAsk, fConfirmed:
		if e.epoch != c.epoch || c.victim == nil {
			return
		}
		v := &c.views[e.j]
		if v.removed || v.confirm == nil || v.confirm.seq != e.seq {
			return
		}
		if e.kind == fConfirmAsk {
			c.ask(e.j, now)
		} else {
			c.confirmed(e.j, now)
		}
	case fObit:
		if e.epoch == c.epoch && c.victim != nil {
			c.sendObituary(e.j, e.n, now)
		}
	case fGrace:
		if e.epoch == c.epoch && c.victim != nil {
			c.graceOver(now)
		}
	}
}

// announceDue mirrors Group.announceDue without legacy mode.
func (c *fcrowd) announceDue(j int, now time.Time) {
	wait := time.Duration(float64(c.announceWait(c.members())) * c.annU[j])
	if at := onGrid(c.annLast[j].Add(wait)); at.After(now) {
		c.annAt[j] = at // forward reconsideration
		c.push(fEvent{at: at, kind: fAnnounce, j: j})
		return
	}
	c.out = append(c.out, simOut{b: c.ann[j], src: c.addr(j)})
	c.stats.announcements++
	c.annLast[j] = now
	c.annU[j] = 0.5 + rand.Float64()
	c.annAt[j] = onGrid(now.Add(time.Duration(float64(c.announceWait(c.members())) * c.annU[j])))
	c.push(fEvent{at: c.annAt[j], kind: fAnnounce, j: j})
}

// real returns the real member id, heard now from src, adding it.
func (c *fcrowd) real(id string, src netip.AddrPort) *freal {
	r := c.byID[id]
	if r == nil {
		r = &freal{id: id, idx: len(c.reals), addr: src}
		c.reals = append(c.reals, r)
		c.byID[id] = r
	}
	return r
}

// admit makes r a joined member of every crowd member, which ping it in
// the ring rotation: one member a slot (pingerOf).
func (c *fcrowd) admit(r *freal, now time.Time) {
	if r.joined || r.gone {
		return
	}
	r.joined, r.joinedAt = true, now
	c.snap, c.ring = nil, nil
	pi := int64(c.cfg.PingInterval)
	r.slot = now.UnixNano()/pi + 1
	c.nextTurn(r)
}

// nextTurn schedules r's ping in slot r.slot, at its pinger's phase.
func (c *fcrowd) nextTurn(r *freal) {
	pi := int64(c.cfg.PingInterval)
	at := r.slot * pi
	if j, ok := c.pingerOf(r, r.slot); ok {
		_, phase := c.slotOf(j)
		at += phase
	}
	c.push(fEvent{at: time.Unix(0, at), kind: fPing, r: r.idx})
}

// roundTick is r's ping in slot r.slot by the member whose turn it is
// (Group.nextPing), when a crowd member; a real member's is its own.
func (c *fcrowd) roundTick(ri int, now time.Time) {
	r := c.reals[ri]
	if r.gone {
		return
	}
	j, crowd := c.pingerOf(r, r.slot)
	r.slot++
	c.nextTurn(r)
	if !crowd || r == c.victim && c.views[j].removed {
		return
	}
	if c.flights[fkey{j, ri}] == nil && !(r == c.victim && (c.views[j].dying || c.views[j].confirm != nil || !c.views[j].graceUntil.IsZero())) {
		c.startPing(j, r, false, now)
	}
}

// pingerOf is the crowd member that pings r in slot s: the one s mod
// (N-1) + 1 places before it in the ring; false when that is a real
// member (or r is not in the ring).
func (c *fcrowd) pingerOf(r *freal, s int64) (int, bool) {
	c.makeRing()
	m := int64(len(c.ringIDs))
	pr, ok := c.ring[r.id]
	if !ok || m < 2 {
		return 0, false
	}
	p := c.ringIDs[((int64(pr)-1-s%(m-1))%m+m)%m]
	j := simIndex(p) - c.first
	return j, j >= 0 && j < c.size
}

// ringRank mirrors discovery's: FNV-1a 64 of the ID.
func ringRank(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

// turn is crowd member j's next ping of r after now, as Group.nextPing
// and armPing make it: in the slot s (PingIntervals of the wall clock,
// shifted by j's phase) where r is s mod (N-1) + 1 places after j in the
// ring of all N members.
func (c *fcrowd) turn(j int, r *freal, now time.Time) time.Time {
	c.makeRing()
	m := int64(len(c.ringIDs))
	pr, ok := c.ring[r.id]
	if !ok || m < 2 {
		return now
	}
	k := ((int64(pr)-int64(c.ring[c.name(j)])-1)%m + m) % m // places after j, less one: 0 to m-2
	pi, phase := c.slotOf(j)
	s := (now.UnixNano()-phase)/pi + 1 // the first slot after now
	s += ((k-s%(m-1))%(m-1) + (m - 1)) % (m - 1)
	return time.Unix(0, s*pi+phase)
}

// slotOf is the length of a slot and crowd member j's phase in it
// (Group.armPing).
func (c *fcrowd) slotOf(j int) (pi, phase int64) {
	pi = int64(c.cfg.PingInterval)
	return pi, int64(ringRank(c.name(j)) % uint64(pi))
}

// makeRing makes the ring of all members, crowd and real, by ringRank,
// when members joined or went.
func (c *fcrowd) makeRing() {
	if c.ring != nil {
		return
	}
	ids := c.ringIDs[:0]
	for k := range c.size {
		ids = append(ids, c.name(k))
	}
	for _, x := range c.reals {
		if x.joined && !x.gone {
			ids = append(ids, x.id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		return cmp.Or(cmp.Compare(ringRank(a), ringRank(b)), strings.Compare(a, b))
	})
	c.ringIDs = ids
	c.ring = make(map[string]int, len(ids))
	for i, id := range ids {
		c.ring[id] = i
	}
}

// startPing mirrors Group.startPing.
func (c *fcrowd) startPing(j int, r *freal, helper bool, now time.Time) {
	k := fkey{j, r.idx}
	if c.flights[k] != nil {
		return
	}
	c.seq++
	f := &fflight{seq: c.seq, nonce: rand.Uint32(), start: now, helper: helper}
	c.flights[k] = f
	c.stats.pings++
	c.sendPing(j, r, f)
	if f.refused {
		c.push(fEvent{at: now.Add(c.cfg.RefusedGrace), kind: fPingDue, j: j, r: r.idx, seq: f.seq})
		return
	}
	for n := 1; n <= c.cfg.PingResends; n++ {
		c.push(fEvent{at: now.Add(c.cfg.PingTimeout * time.Duration(n) / time.Duration(c.cfg.PingResends+1)), kind: fResend, j: j, r: r.idx, seq: f.seq})
	}
	c.push(fEvent{at: now.Add(c.cfg.PingTimeout), kind: fPingDue, j: j, r: r.idx, seq: f.seq})
}

func (c *fcrowd) sendPing(j int, r *freal, f *fflight) {
	b := c.encode(&codec.Message{Kind: codec.Ping, ID: c.name(j), Nonce: f.nonce, Version: c.version[j]})
	if b == nil {
		return
	}
	c.lan.mu.Lock()
	ep := c.lan.byAddr[r.addr]
	c.lan.mu.Unlock()
	if ep != nil && ep.killed.Load() {
		f.refused = true // its host refuses at once
		return
	}
	c.out = append(c.out, simOut{b: b, src: c.addr(j), dst: r.addr})
}

// pingFailed mirrors Group.pingFailed and tellFailed.
func (c *fcrowd) pingFailed(j int, r *freal, f *fflight, now time.Time) {
	if r != c.victim {
		return // only the victim ever fails to answer
	}
	v := &c.views[j]
	if len(v.askers) > 0 {
		m := codec.Message{Kind: codec.Evidence, ID: c.name(j), Target: r.id, Heard: -1, Probed: -1, Failed: true}
		if !v.lastAck.IsZero() {
			m.Probed = now.Sub(v.lastAck)
		}
		if b := c.encode(&m); b != nil {
			for _, a := range v.askers {
				c.sendTo(j, b, a, codec.Evidence)
				c.stats.failedSent++
			}
		}
		v.askers = nil
	}
	if f.helper || v.removed || v.confirm != nil || c.heardBy(j).After(f.start) {
		return
	}
	if !v.dying {
		v.dying, v.since = true, f.start
	}
	c.startConfirm(j, now)
}

// heardBy is when crowd member j last heard the victim.
func (c *fcrowd) heardBy(j int) time.Time {
	h := c.victim.lastHeard
	if v := &c.views[j]; v.heard.After(h) {
		h = v.heard
	}
	return h
}

// startConfirm mirrors Group.startConfirm for a pingable member.
func (c *fcrowd) startConfirm(j int, now time.Time) {
	helpers := c.pickHelpers(j, c.cfg.Confirmers)
	v := &c.views[j]
	if len(helpers) == 0 {
		c.deathRoundFailed(j, now)
		return
	}
	c.seq++
	v.confirm = &fconfirm{seq: c.seq, since: v.since, asked: helpers, answered: make([]bool, len(helpers)), failed: make([]bool, len(helpers))}
	c.stats.confirms++
	c.ask(j, now)
	c.push(fEvent{at: now.Add(c.cfg.ConfirmTimeout / 2), kind: fConfirmAsk, j: j, seq: c.seq, epoch: c.epoch})
	c.push(fEvent{at: now.Add(c.cfg.ConfirmTimeout), kind: fConfirmed, j: j, seq: c.seq, epoch: c.epoch})
}

// pickHelpers: k distinct pingable members other than j and the victim,
// crowd or real, at random.
func (c *fcrowd) pickHelpers(j, k int) []helper {
	var reals []*freal
	for _, r := range c.reals {
		if r.joined && !r.gone && r != c.victim {
			reals = append(reals, r)
		}
	}
	total := len(reals) + c.size - 1
	k = min(k, total)
	picked := make([]helper, 0, k)
	for len(picked) < k {
		x := rand.IntN(total)
		var h helper
		if x < len(reals) {
			h = helper{id: reals[x].id, addr: reals[x].addr, j: -1}
		} else {
			i := x - len(reals)
			if i >= j {
				i++
			}
			h = helper{id: c.name(i), addr: c.addr(i), j: i}
		}
		if !slices.ContainsFunc(picked, func(p helper) bool { return p.id == h.id }) {
			picked = append(picked, h)
		}
	}
	return picked
}

func (c *fcrowd) ask(j int, now time.Time) {
	cf := c.views[j].confirm
	b := c.encode(&codec.Message{Kind: codec.Confirm, ID: c.name(j), Target: c.victim.id, Since: now.Sub(cf.since), Probe: true})
	if b == nil {
		return
	}
	for i, h := range cf.asked {
		if !cf.answered[i] {
			c.sendTo(j, b, h.addr, codec.Confirm)
		}
	}
}

func (c *fcrowd) sendTo(j int, b []byte, dst netip.AddrPort, kind codec.Kind) {
	if c.has(dst) {
		c.internal = append(c.internal, crowdIn{b: b, src: c.addr(j), to: c.index(dst), from: j})
		return
	}
	c.out = append(c.out, simOut{b: b, src: c.addr(j), dst: dst})
	switch kind {
	case codec.Confirm:
		c.stats.cfmToReal++
	case codec.Evidence:
		c.stats.evdToReal++
	}
}

// confirmed mirrors Group.confirmed and deathRoundFailed with one round
// (no loss).
func (c *fcrowd) confirmed(j int, now time.Time) {
	c.views[j].confirm = nil
	c.deathRoundFailed(j, now)
}

func (c *fcrowd) deathRoundFailed(j int, now time.Time) {
	v := &c.views[j]
	if !v.dying {
		return
	}
	c.sendObituary(j, 0, now)
	c.suspect(j, v.since, now)
}

// sendObituary multicasts copy n of j's obituary of the victim.
func (c *fcrowd) sendObituary(j, n int, now time.Time) {
	v := &c.views[j]
	b := c.encode(&codec.Message{Kind: codec.Obituary, ID: c.name(j), Target: c.victim.id, Since: max(now.Sub(v.since), time.Millisecond)})
	if b != nil {
		c.stats.obitsSent++
		c.out = append(c.out, simOut{b: b, src: c.addr(j)})
		c.internal = append(c.internal, crowdIn{b: b, src: c.addr(j), to: -1, from: j})
	}
	if n+1 < 3 {
		c.push(fEvent{at: now.Add(100 * time.Millisecond), kind: fObit, j: j, n: n + 1, epoch: c.epoch})
		return
	}
	v.dying = false
}

// suspect mirrors Group.suspect for member j.
func (c *fcrowd) suspect(j int, since, now time.Time) {
	v := &c.views[j]
	if v.removed || c.heardBy(j).After(since) || !v.graceUntil.IsZero() {
		return
	}
	v.graceUntil, v.graceSince = now.Add(c.cfg.ObituaryGrace), since
	c.push(fEvent{at: v.graceUntil, kind: fGrace, epoch: c.epoch})
}

// graceOver mirrors Group.graceOver for every member whose grace ended.
func (c *fcrowd) graceOver(now time.Time) {
	for j := range c.views {
		v := &c.views[j]
		if v.removed || v.graceUntil.IsZero() || v.graceUntil.After(now) {
			continue
		}
		if c.heardBy(j).After(v.graceSince) {
			v.graceUntil = time.Time{}
			continue
		}
		v.removed, v.removedAt = true, now
		v.confirm, v.askers, v.dying = nil, nil, false
		c.stats.removed++
		delete(c.flights, fkey{j, c.victim.idx})
	}
}

func (c *fcrowd) handleDatagram(d crowdIn, now time.Time) {
	var m codec.Message
	if err := c.codec.Decode(d.b, &m); err != nil || m.Group != c.cfg.Name {
		c.stats.undecodable++
		return
	}
	if d.from >= 0 {
		switch m.Kind {
		case codec.Confirm:
			c.answerConfirm(d.to, &m, d.src, now)
		case codec.Evidence:
			c.takeEvidence(d.to, &m, now)
		case codec.Obituary:
			c.takeObituary(&m, d.from, now)
		}
		return
	}
	r := c.byID[m.ID]
	if r != nil && d.to < 0 {
		r.lastHeard = now
	}
	if r != nil && r == c.victim && d.to >= 0 {
		c.views[d.to].heard = now
	}
	switch m.Kind {
	case codec.Announce:
		if d.to >= 0 && (r == nil || !r.joined) {
			// The answer to our who=1: admitted with one probe of ours,
			// which succeeds (repair.go).
			r = c.real(m.ID, d.src)
			r.lastHeard = now
			c.stats.admittedByWho++
			c.admit(r, now)
		}
	case codec.Query:
		if d.to >= 0 {
			if r != nil && r.joined {
				c.out = append(c.out, simOut{b: c.ann[d.to], src: c.addr(d.to), dst: d.src}) // repair: answerQuery by unicast
			}
			return
		}
		r = c.real(m.ID, d.src)
		r.addr, r.lastHeard = d.src, now
		if m.Pings {
			c.offer(r, &m, d.src, now)
		}
	case codec.Evidence:
		if d.to < 0 {
			// A vouch: a member's probe of the pending newcomer succeeded.
			if t := c.byID[m.Target]; t != nil && !t.joined && m.Probed == 0 {
				c.admit(t, now)
			}
			return
		}
		c.takeEvidence(d.to, &m, now)
	case codec.Confirm:
		if d.to >= 0 {
			c.answerConfirm(d.to, &m, d.src, now)
		}
	case codec.Obituary:
		c.takeObituary(&m, -1, now)
	case codec.Ping:
		if d.to >= 0 {
			c.takePing(d.to, r, &m, d.src)
		}
	case codec.Ack:
		if d.to >= 0 && r != nil {
			c.takeAck(d.to, r, &m, d.src, now)
		}
	case codec.Pull:
		if d.to >= 0 {
			c.servePull(d.to, &m, d.src, now)
		}
	case codec.Goodbye:
		if r != nil {
			r.gone = true
			c.snap, c.ring = nil, nil
		}
	}
}

// takePing mirrors Group.takePing: an ack from j's address with the
// nonce; who=1 when the pinger is not a member here.
func (c *fcrowd) takePing(j int, r *freal, m *codec.Message, src netip.AddrPort) {
	ack := codec.Message{Kind: codec.Ack, ID: c.name(j), Nonce: m.Nonce, Version: c.version[j]}
	if r == nil || !r.joined || r.gone {
		ack.Who = true
		c.stats.whoAcks++
	} else if r.addr != src {
		return // spoofed
	}
	if b := c.encode(&ack); b != nil {
		c.out = append(c.out, simOut{b: b, src: c.addr(j), dst: src})
		c.stats.acks++
	}
}

// takeAck mirrors Group.takeAck and pingAcked.
func (c *fcrowd) takeAck(j int, r *freal, m *codec.Message, src netip.AddrPort, now time.Time) {
	k := fkey{j, r.idx}
	f := c.flights[k]
	if f == nil || f.nonce != m.Nonce || src != r.addr {
		return
	}
	delete(c.flights, k)
	if m.Who && r.joined {
		c.out = append(c.out, simOut{b: c.ann[j], src: c.addr(j), dst: src})
	}
	if r != c.victim {
		return
	}
	v := &c.views[j]
	v.lastAck, v.heard = now, now
	v.dying, v.confirm = false, nil
	if len(v.askers) > 0 {
		b := c.encode(&codec.Message{Kind: codec.Evidence, ID: c.name(j), Target: r.id, Heard: 0, Probed: 0})
		for _, a := range v.askers {
			if b != nil {
				c.sendTo(j, b, a, codec.Evidence)
			}
		}
		v.askers = nil
	}
}

// answerConfirm mirrors Group.answerConfirm for a pingable target.
func (c *fcrowd) answerConfirm(j int, m *codec.Message, src netip.AddrPort, now time.Time) {
	c.stats.cfmAnswered++
	reply := codec.Message{Kind: codec.Evidence, ID: c.name(j), Target: m.Target, Heard: -1, Probed: -1}
	r := c.byID[m.Target]
	_, isCrowd := c.isCrowd(m.Target)
	switch {
	case m.Target == c.name(j):
		reply.Heard, reply.Probed = 0, 0
	case r != nil && r == c.victim && !c.views[j].removed:
		v := &c.views[j]
		reply.Heard = now.Sub(c.heardBy(j))
		if !v.lastAck.IsZero() {
			reply.Probed = now.Sub(v.lastAck)
		}
		if m.Probe && (reply.Probed < 0 || reply.Probed >= m.Since) {
			if len(v.askers) < maxAskers && !slices.Contains(v.askers, src) {
				v.askers = append(v.askers, src)
			}
			defer c.startPing(j, r, true, now)
		}
	case r != nil && r.joined && !r.gone && r != c.victim:
		reply.Heard = now.Sub(r.lastHeard)
	case isCrowd:
		reply.Heard = 0 // crowd members hear each other's pings; none ever dies
	}
	if b := c.encode(&reply); b != nil {
		c.sendTo(j, b, src, codec.Evidence)
	}
}

// takeEvidence mirrors Group.takeEvidence for member j.
func (c *fcrowd) takeEvidence(j int, m *codec.Message, now time.Time) {
	if c.victim == nil || m.Target != c.victim.id {
		return
	}
	v := &c.views[j]
	if v.removed || v.confirm == nil {
		return
	}
	cf := v.confirm
	i := slices.IndexFunc(cf.asked, func(h helper) bool { return h.id == m.ID })
	if i < 0 {
		return
	}
	if m.Probed >= 0 && now.Add(-m.Probed).After(cf.since) || m.Heard >= 0 && now.Add(-m.Heard).After(cf.since) {
		c.stats.refutes++
		v.confirm, v.dying = nil, false
		return
	}
	cf.answered[i] = true
	if m.Failed {
		cf.failed[i] = true
	}
	if !slices.Contains(cf.failed, false) {
		c.confirmed(j, now)
	}
}

// takeObituary mirrors Group.takeObituary for every crowd member: one
// about a crowd member is refuted by it, twice; one about the victim
// starts each member's grace.
func (c *fcrowd) takeObituary(m *codec.Message, from int, now time.Time) {
	if j, ok := c.isCrowd(m.Target); ok {
		if now.Sub(c.refuted[j]) > c.cfg.AnnounceInterval/4 {
			c.refuted[j] = now
			c.stats.refutations++
			c.out = append(c.out, simOut{b: c.ann[j], src: c.addr(j)})
			c.push(fEvent{at: now.Add(100 * time.Millisecond), kind: fRefute, j: j})
		}
		return
	}
	if c.victim == nil || m.Target != c.victim.id {
		return
	}
	if from < 0 {
		c.stats.obitsTaken++
	}
	since := now.Add(-m.Since)
	for j := range c.views {
		c.suspect(j, since, now)
	}
}

// offerRank mirrors Group.offerRank over the crowd's view: the crowd
// members ranking F and S (-1 when a real member does) for the querier id.
func (c *fcrowd) ranked(id string) (f, s int) {
	type cand struct {
		rank uint64
		id   string
		j    int
	}
	best := [2]cand{{rank: ^uint64(0)}, {rank: ^uint64(0)}}
	consider := func(x cand) {
		less := func(a, b cand) bool { return a.rank < b.rank || a.rank == b.rank && a.id < b.id }
		if less(x, best[0]) {
			best[1], best[0] = best[0], x
		} else if less(x, best[1]) {
			best[1] = x
		}
	}
	for j := range c.size {
		consider(cand{probeRank(id, c.name(j)), c.name(j), j})
	}
	for _, r := range c.reals {
		if r.joined && !r.gone && r.id != id {
			consider(cand{probeRank(id, r.id), r.id, -1})
		}
	}
	return best[0].j, best[1].j
}

// probeRank is discovery's (admit.go): FNV-1a 64 of both IDs, each
// preceded by its length.
func probeRank(peer, member string) uint64 {
	h := fnv.New64a()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(peer)))
	h.Write(n[:])
	h.Write([]byte(peer))
	binary.BigEndian.PutUint32(n[:], uint32(len(member)))
	h.Write(n[:])
	h.Write([]byte(member))
	return h.Sum64()
}

// offer answers a pinging query as F and S do (Group.offer), and admits
// the querier when a crowd member is F (its probe succeeds: the vouch).
func (c *fcrowd) offer(r *freal, q *codec.Message, src netip.AddrPort, now time.Time) {
	f, s := c.ranked(q.ID)
	qb := c.encode(q)
	for _, j := range []int{f, s} {
		if j < 0 {
			continue
		}
		m := codec.Message{Kind: codec.Offer, ID: c.name(j), Cookie: c.cookie(src.Addr(), q.ID, now), Pages: codec.MaxPages}
		longest := c.encode(&m)
		if longest == nil || len(longest) > len(qb) {
			c.stats.offersTooLong++
			continue
		}
		m.Pages = len(c.snapshot().pages)
		if b := c.encode(&m); b != nil {
			c.stats.offers++
			c.out = append(c.out, simOut{b: b, src: c.addr(j), dst: src})
		}
	}
	if f >= 0 && !r.joined {
		if mode, _ := c.health.state(healthURI(q.ID)); mode == up {
			c.admit(r, now)
			if b := c.encode(&codec.Message{Kind: codec.Evidence, ID: c.name(f), Target: q.ID, Heard: 0, Probed: 0}); b != nil {
				c.stats.vouches++
				c.out = append(c.out, simOut{b: b, src: c.addr(f)})
			}
		}
	}
}

// cookie mirrors Group.cookie, under the crowd's one secret.
func (c *fcrowd) cookie(src netip.Addr, id string, now time.Time) [8]byte {
	mac := hmac.New(sha256.New, c.secret)
	mac.Write(append(src.Unmap().AppendTo(nil), '|'))
	mac.Write([]byte(id))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(now.Unix()/60))
	mac.Write(b[:])
	var out [8]byte
	copy(out[:], mac.Sum(nil))
	return out
}

func (c *fcrowd) validCookie(src netip.Addr, id string, ck [8]byte, now time.Time) bool {
	return ck == c.cookie(src, id, now) || ck == c.cookie(src, id, now.Add(-time.Minute))
}

// snapshot is the crowd's table as pages (Group.snapshot, paginate): every
// crowd member and every real member it holds joined.
func (c *fcrowd) snapshot() *fsnap {
	if c.snap != nil {
		return c.snap
	}
	var entries []codec.Entry
	for j := range c.size {
		if c.fails[j] > 0 {
			continue // only healthy members are listed (Group.snapshot)
		}
		h := healthURI(c.name(j)).String()
		entries = append(entries, codec.Entry{ID: c.name(j), Addr: c.addr(j), Health: h, Comms: h,
			Version: c.version[j], HealthFails: c.fails[j], Pings: true, Extended: true})
	}
	for _, r := range c.reals {
		if r.joined && !r.gone {
			h := healthURI(r.id).String()
			entries = append(entries, codec.Entry{ID: r.id, Addr: r.addr, Health: h, Comms: h, Version: 1, Pings: true, Extended: true})
		}
	}
	m := codec.Message{Kind: codec.Page, Group: c.cfg.Name, ID: c.name(0), Page: codec.MaxPages - 1, Pages: codec.MaxPages}
	var buf []byte
	fits := func(es []codec.Entry) bool {
		m.Entries = es
		var err error
		buf, err = c.codec.Encode(buf[:0], &m)
		return err == nil
	}
	s := &fsnap{}
	n := 1
	for i := 0; i < len(entries); {
		n = min(n, len(entries)-i)
		for n > 1 && !fits(entries[i:i+n]) {
			n--
		}
		for n < codec.MaxEntries && i+n < len(entries) && fits(entries[i:i+n+1]) {
			n++
		}
		s.pages = append(s.pages, entries[i:i+n])
		i += n
	}
	c.snap = s
	return s
}

// servePull mirrors Group.servePull: a page for a pull with the cookie,
// within StateRate's token bucket of the member that serves it; a pull
// that finds no token waits for one (queuePull), at most 16 a querier.
func (c *fcrowd) servePull(j int, m *codec.Message, src netip.AddrPort, now time.Time) {
	if !c.validCookie(src.Addr(), m.ID, m.Cookie, now) {
		c.stats.badCookies++
		return
	}
	s := c.snapshot()
	if m.Page >= len(s.pages) {
		c.stats.pullsDropped++
		return
	}
	tb := c.bucket(j, now)
	if len(c.queued[j]) > 0 || tb.tokens < 1 {
		c.queuePull(j, fpull{page: m.Page, cookie: m.Cookie, dst: src}, now)
		return
	}
	tb.tokens--
	c.sendPage(j, fpull{page: m.Page, cookie: m.Cookie, dst: src})
}

// fpull is a pull a crowd member serves.
type fpull struct {
	page   int
	cookie [8]byte
	dst    netip.AddrPort
}

// bucket is crowd member j's page bucket, refilled to now.
func (c *fcrowd) bucket(j int, now time.Time) *fbucket {
	tb := c.tokens[j]
	if tb == nil {
		tb = &fbucket{tokens: c.pageBurst(), at: now}
		c.tokens[j] = tb
	}
	tb.tokens = min(c.pageBurst(), tb.tokens+now.Sub(tb.at).Seconds()*c.cfg.StateRate)
	tb.at = now
	return tb
}

func (c *fcrowd) sendPage(j int, p fpull) {
	s := c.snapshot()
	b := c.encode(&codec.Message{Kind: codec.Page, ID: c.name(j), Cookie: p.cookie, Page: p.page, Pages: len(s.pages), Entries: s.pages[p.page]})
	if b != nil {
		c.stats.pages++
		c.out = append(c.out, simOut{b: b, src: c.addr(j), dst: p.dst})
	}
}

// queuePull mirrors Group.queuePull: at most a pull window (16) of a
// querier wait, a page once.
func (c *fcrowd) queuePull(j int, p fpull, now time.Time) {
	n := 0
	for _, q := range c.queued[j] {
		if q.dst.Addr() == p.dst.Addr() {
			if q.page == p.page {
				c.stats.pullsDropped++
				return
			}
			n++
		}
	}
	if n >= 16 {
		c.stats.pullsDropped++
		return
	}
	c.queued[j] = append(c.queued[j], p)
	if len(c.queued[j]) == 1 {
		c.armServe(j, now)
	}
}

// armServe schedules j's next queued page for its token (bucket.wait).
func (c *fcrowd) armServe(j int, now time.Time) {
	tb := c.bucket(j, now)
	wait := time.Millisecond
	if tb.tokens < 1 {
		wait = max(wait, time.Duration(math.Ceil((1-tb.tokens)/c.cfg.StateRate*float64(time.Second))))
	}
	c.push(fEvent{at: now.Add(wait), kind: fServe, j: j})
}

// serveQueued mirrors Group.serveQueued for crowd member j.
func (c *fcrowd) serveQueued(j int, now time.Time) {
	tb := c.bucket(j, now)
	for len(c.queued[j]) > 0 && tb.tokens >= 1 {
		tb.tokens--
		p := c.queued[j][0]
		c.queued[j] = c.queued[j][1:]
		c.sendPage(j, p)
	}
	if len(c.queued[j]) > 0 {
		c.armServe(j, now)
	} else {
		delete(c.queued, j)
	}
}

// pageBurst mirrors Group.pageBurst.
func (c *fcrowd) pageBurst() float64 { return max(1, min(16, c.cfg.StateRate)) }

// turnUnhealthy makes crowd member j's health check fail from now: its
// next self-check, at a uniform point of HealthInterval, finds it, and it
// multicasts its announcement with h=1 and a new v, twice 100 ms apart
// (selfcheck.go).
func (c *fcrowd) turnUnhealthy(j int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.push(fEvent{at: time.Now().Add(rand.N(c.cfg.HealthInterval)), kind: fHealth, j: j})
	c.poke()
}

// turnHealthy makes crowd member j's health check pass again: its next
// self-check, a HealthInterval after the one that failed, reports it.
func (c *fcrowd) turnHealthy(j int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.push(fEvent{at: c.checked[j].Add(c.cfg.HealthInterval), kind: fHealthy, j: j})
	c.poke()
}

// healthReport sends member j's report of a self-check that changed its
// count of failed ones.
func (c *fcrowd) healthReport(j int, now time.Time) {
	c.checked[j] = now
	if c.fails[j]++; c.fails[j] > 0 && c.healthy[j] {
		c.fails[j] = 0
	}
	c.version[j]++
	c.encodeAnn(j)
	c.snap = nil
	c.stats.healthReports++
	c.handleEvent(fEvent{at: now, kind: fAnnounceCopy, j: j}, now)
	c.push(fEvent{at: now.Add(100 * time.Millisecond), kind: fAnnounceCopy, j: j})
}

// setVictim makes the real member id the one whose removal the crowd
// models. Each crowd member last had its ack at its latest turn to ping it.
func (c *fcrowd) setVictim(t *testing.T, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.byID[id]
	require.True(t, r != nil && r.joined, "the crowd never admitted %s", id)
	c.epoch++
	c.victim = r
	c.views = make([]fview, c.size)
	now := time.Now()
	round := time.Duration(c.members()-1) * c.cfg.PingInterval
	for j := range c.views {
		ack := c.turn(j, r, now).Add(-round) // its latest turn
		if ack.Before(r.joinedAt) {
			ack = time.Time{}
		}
		c.views[j].lastAck, c.views[j].heard = ack, ack
	}
}

// forget ends the victim's epoch: it is gone from the group.
func (c *fcrowd) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.victim != nil {
		c.victim.gone = true
		c.snap, c.ring = nil, nil
	}
	c.victim, c.views = nil, nil
	c.epoch++
}

// removal reports how many crowd members removed the victim and when the
// last did.
func (c *fcrowd) removal() (removed int, last time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.views {
		if v.removed {
			removed++
			if v.removedAt.After(last) {
				last = v.removedAt
			}
		}
	}
	return removed, last
}

// joinedAt is when the crowd admitted the real member id; zero: not yet.
func (c *fcrowd) joinedAt(id string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.byID[id]; r != nil && r.joined {
		return r.joinedAt
	}
	return time.Time{}
}

// logging starts (or stops, returning them) the crowd members' logs of
// the unicast datagrams they send and receive.
func (c *fcrowd) logging(on bool) map[int][]wireEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.log
	c.logOn, c.log = on, map[int][]wireEvent{}
	return l
}

func (c *fcrowd) snapshotStats() fstats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}
