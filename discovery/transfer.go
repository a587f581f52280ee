package discovery

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	mrand "math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/score"
)

// This file holds joins by state transfer (docs/design/frugal.md, section
// 2.4), used only between members that ping (Config.PingInterval) and
// queriers that said so (codec.Message.Pings); a legacy query is answered
// as before (announce.go).
//
//   - Offer. Of the members that hear a pinging query, only F and S, the
//     first two in the first-prober ranking of the querier's ID
//     (probeRank, over us and the healthy joined members), answer it: each
//     sends the querier, by unicast, an Offer with a cookie and the size of
//     its table in pages, and only when the Offer is no longer than the
//     query it answers, so that a forged query reflects at most its own
//     size, twice. When it would be longer, F and S answer as everyone
//     answers a legacy query: by multicast, rate-limited. A watcher pads
//     its query (watcherPad) to have offers.
//   - Cookie. HMAC-SHA256, under a secret each Group draws when it first
//     needs one, of the querier's address, its ID and the minute, cut to
//     8 bytes; valid in that minute and the next. It costs no state until
//     a Pull brings it back: a Pull without a valid one gets nothing and
//     is counted DropSpoofed. A forger who spoofs a victim's address never
//     sees the Offer, so cannot make us send pages to the victim.
//   - Pull. The querier pulls the pages of the first Offer it gets,
//     pullWindow at a time, each Pull sent again after pullResend without
//     its Page, up to pullResends times; a Page still missing then makes
//     it pull the whole table from the other Offer, if it had one.
//   - Pages. A Page holds as many entries as the codec fits in a datagram:
//     every healthy joined member and ourselves (our entry's Addr is empty:
//     it is the Page's source). The querier tracks each entry as a joined
//     member at once, without a probe (F admitted them), and vouches for
//     none; F's own entry, which nobody admitted, waits for one probe of
//     ours where Joined does (Config.JoinBeforeProbe false). Entries go
//     through the checks of an announcement's URIs (see takeEntries) and
//     MaxPeers.
//   - Bounds on the sender: MaxTransfers transfers at once, one per
//     querier address (a transfer is under way until each page has gone
//     once); StateRate pages a second in all; each page served at most
//     pageServes times per transfer; a transfer forgotten transferIdle
//     after its last Pull. Offers themselves are limited to offerRate a
//     second.
//   - Pacing. A valid Pull that finds no page token waits for one, up to
//     pullWindow Pulls a transfer (the puller's window: more are not
//     its), and its page goes when the token comes (taskServe). Dropping
//     it instead tied a transfer's pace to pullResend: on a LAN faster
//     than StateRate, a window a pullResend, 160 pages a second.

const (
	pullWindow   = 16                     // pulls in flight
	pullResend   = 100 * time.Millisecond // a pull without its page is sent again after this
	pullResends  = 3                      // at most this many times
	pageServes   = 2                      // a page is served at most this often per transfer
	transferIdle = 10 * time.Second       // a transfer is forgotten this long after its last pull
	// offerRate and offerBurst bound the offers a member sends.
	offerRate  = 20
	offerBurst = 8
	// offersFor is how long after Join offers are taken: a member pulls
	// only while it joins.
	offersFor = 10 * time.Second
	// snapFresh is how long a snapshot of the table serves new offers and
	// transfers while no membership event came.
	snapFresh = time.Second
	// watcherPad is the longest member ID whose offer fits in a watcher's
	// padded query: 64 bytes, a UUID (36) with room to spare.
	watcherPad = 64
)

// transfers is the Group's state of the state transfer. The owner goroutine
// owns it.
type transfers struct {
	secret []byte
	// snaps are the latest snapshots of our table, by the address of the
	// link our own entry names (none when our URIs name one): one a link.
	snaps    map[netip.Addr]*tableSnap
	serving  map[netip.Addr]*serving // by querier host; at most 2 × MaxTransfers (roomToServe)
	pageTok  bucket                  // StateRate
	offerTok bucket                  // offerRate
	serveDue bool                    // a taskServe is scheduled
	// Our own transfer, while we join: the transfer we pull, the other
	// offer to fall back to, and how many offers we took (at most 2).
	pull     *pulling
	fallback *offerFrom
	offers   int
	cookies  [2][8]byte // of the offers taken
	done     bool       // our transfer ended: take no more offers
}

// tableSnap is our table as pages: page i holds entries[starts[i]:starts[i+1]].
// It is never changed once made; transfers that started on it keep it.
type tableSnap struct {
	entries []codec.Entry
	starts  []int
	events  uint64  // Stats.Events when it was made
	at      instant // when it was made
}

func (s *tableSnap) pages() int { return len(s.starts) - 1 }

// serving is one transfer we serve.
type serving struct {
	id     string
	cookie [8]byte
	snap   *tableSnap
	served []uint8 // times each page was sent
	left   int     // pages never sent
	last   instant // the latest valid pull
	to     netip.AddrPort
	queue  []int // pages pulled while no page token was left, oldest first; at most pullWindow
}

// offerFrom is an offer we took.
type offerFrom struct {
	from   netip.AddrPort
	id     string
	cookie [8]byte
	pages  int
}

// pulling is the transfer we pull.
type pulling struct {
	offerFrom
	got      []bool
	left     int          // pages not received
	next     int          // the next page never asked for
	inflight []pullFlight // at most pullWindow
	armed    instant      // the taskPull due; others are stale
	received bool         // a page came: its Pages is the transfer's
}

type pullFlight struct {
	page  int
	sent  instant
	tries uint8
}

// offerRank is our rank in the first-prober ranking of the querier id:
// 0 when we are F, 1 when S, 2 otherwise. The querier itself, should it be
// a member already (a restart), does not count.
func (g *Group) offerRank(id string) int {
	self := g.me().ID
	mine := probeRank(id, self)
	before := 0
	for mid, st := range g.peers {
		if mid == id || !st.joined || st.member.Verdict != score.Healthy {
			continue
		}
		if r := probeRank(id, mid); r < mine || r == mine && mid < self {
			if before++; before == 2 {
				return 2
			}
		}
	}
	return before
}

// offer answers a pinging query: when we are F or S, with an Offer by
// unicast to the query's source, no longer than the query. When an Offer
// would be longer (short names: the query carries little), every member
// answers as a legacy query is answered, by multicast and rate-limited,
// not F and S alone: the querier then hears the whole group, as before
// transfers, rather than two members and nobody else until their
// periodic announcements, minutes away in a large group (rtcp.go).
func (g *Group) offer(in inbound) {
	rank := g.offerRank(in.msg.ID)
	// Every member checks the size, F and S alone make the table's pages:
	// an Offer of the most pages there can be is at least as long as ours.
	m := codec.Message{Kind: codec.Offer, Group: g.cfg.Name, ID: g.me().ID,
		Cookie: g.cookie(in.src.Addr(), in.msg.ID, minute(in.at)), Pages: codec.MaxPages}
	longest, err := g.cfg.Codec.Encode(nil, &m)
	if err != nil {
		g.log.Debug("offer failed", "error", err)
		return
	}
	q, err := g.cfg.Codec.Encode(nil, &in.msg) // the query's size, as the codec writes it
	if err != nil || len(longest) > len(q) {
		// An offer may not reflect more than the query.
		if rank <= 1 {
			g.stats.offersLong.Add(1)
		}
		g.answerSoon(in.at)
		return
	}
	if rank > 1 {
		return
	}
	if !g.xfer.offerTok.take(in.at, offerRate, offerBurst) {
		g.stats.drop(DropAnswerLimited)
		return
	}
	m.Pages = g.snapshot(in.at, in.src, in.ifIndex).pages()
	b, err := g.cfg.Codec.Encode(nil, &m)
	if err != nil {
		g.log.Debug("offer failed", "error", err)
		return
	}
	g.stats.offers.Add(1)
	g.sendTo(b, in.src)
}

// minute is the cookie's time: whole minutes since the Unix epoch.
func minute(t time.Time) int64 { return t.Unix() / 60 }

// cookie binds a transfer to the querier's address (its host: the port a
// transport sends a query from need not be the one it pulls from) and ID
// and to a minute.
func (g *Group) cookie(src netip.Addr, id string, min int64) [8]byte {
	if g.xfer.secret == nil {
		g.xfer.secret = make([]byte, 32)
		rand.Read(g.xfer.secret) // never fails (crypto/rand)
	}
	mac := hmac.New(sha256.New, g.xfer.secret)
	var b [64]byte
	a := hostOf(src).AppendTo(b[:0])
	a = append(a, '|')
	mac.Write(a)
	mac.Write([]byte(id))
	binary.BigEndian.PutUint64(b[:8], uint64(min))
	mac.Write(b[:8])
	var c [8]byte
	copy(c[:], mac.Sum(nil))
	return c
}

// validCookie reports whether c is the cookie of src and id this minute or
// the previous one.
func (g *Group) validCookie(src netip.Addr, id string, c [8]byte, now time.Time) bool {
	if g.xfer.secret == nil {
		return false // we never offered
	}
	m := minute(now)
	for _, min := range [2]int64{m, m - 1} {
		want := g.cookie(src, id, min)
		if hmac.Equal(want[:], c[:]) {
			return true
		}
	}
	return false
}

// snapshot returns our table as pages, made afresh when a membership event
// came since the last one, or when that is older than snapFresh.
func (g *Group) snapshot(now time.Time, to netip.AddrPort, ifIndex int) *tableSnap {
	ev := g.stats.events.Load()
	l, perLink := g.linkTo(to, ifIndex)
	if s := g.xfer.snaps[l.Addr]; s != nil && s.events == ev && now.Sub(g.time(s.at)) < snapFresh {
		return s
	}
	entries := make([]codec.Entry, 0, g.members()+1)
	if !g.cfg.Passive && (g.links == nil || perLink) {
		// Our URIs name our address, or name none and carry that of the
		// link toward the querier, as our announcements on it do: the
		// querier hears no announcement of ours while it joins.
		self := *g.me()
		if perLink {
			self = g.selfVia(l)
		}
		entries = append(entries, codec.Entry{ID: self.ID, Health: self.HealthURI.String(),
			Comms: self.CommsURI.String(), Meta: self.Meta, Pings: g.pinging(), Extended: true,
			Version: g.version(), HealthFails: g.healthFails()})
	}
	for id, st := range g.peers {
		if !st.joined || st.member.Verdict != score.Healthy {
			continue
		}
		entries = append(entries, codec.Entry{ID: id, Addr: st.member.Addr, Health: st.health, Comms: st.comms,
			Meta: st.member.Meta, Version: st.version, HealthFails: int(st.healthFails), Pings: st.pings,
			Extended: st.extended})
	}
	s := &tableSnap{events: ev, at: g.at(now)}
	s.entries, s.starts = g.paginate(entries)
	for a, old := range g.xfer.snaps {
		if old.events != ev {
			delete(g.xfer.snaps, a) // transfers that started on it keep it
		}
	}
	if g.xfer.snaps == nil {
		g.xfer.snaps = make(map[netip.Addr]*tableSnap, 2)
	}
	g.xfer.snaps[l.Addr] = s
	return s
}

// paginate packs entries into pages as full as the codec allows, dropping
// any that fits in no page, and returns those kept and where each page
// starts (one more start than pages: the end).
func (g *Group) paginate(entries []codec.Entry) ([]codec.Entry, []int) {
	// The largest page numbers: a page that fits with them fits with any.
	m := codec.Message{Kind: codec.Page, Group: g.cfg.Name, ID: g.me().ID, Page: codec.MaxPages - 1, Pages: codec.MaxPages}
	var buf []byte
	fits := func(es []codec.Entry) bool {
		m.Entries = es
		var err error
		buf, err = g.cfg.Codec.Encode(buf[:0], &m)
		return err == nil
	}
	kept := entries[:0]
	for i := range entries {
		if fits(entries[i : i+1]) {
			kept = append(kept, entries[i])
		}
	}
	clear(entries[len(kept):])
	starts := []int{0}
	n := 1
	for i := 0; i < len(kept); {
		n = min(n, len(kept)-i)
		for n > 1 && !fits(kept[i:i+n]) {
			n--
		}
		for n < codec.MaxEntries && i+n < len(kept) && fits(kept[i:i+n+1]) {
			n++
		}
		i += n
		starts = append(starts, i)
	}
	return kept, starts
}

// takeTransfer handles an Offer, a Pull or a Page. Each comes by unicast:
// one sent by multicast is forged.
func (g *Group) takeTransfer(in inbound) {
	if in.dst.IsValid() && in.dst.IsMulticast() || !g.pinging() {
		g.stats.drop(DropSpoofed)
		return
	}
	switch in.msg.Kind {
	case codec.Offer:
		g.takeOffer(in)
	case codec.Pull:
		g.servePull(in)
	case codec.Page:
		g.takePage(in)
	}
}

// servePull answers a Pull with a valid cookie, within the bounds.
func (g *Group) servePull(in inbound) {
	m := &in.msg
	if g.announce == nil || !g.validCookie(in.src.Addr(), m.ID, m.Cookie, in.at) {
		g.stats.drop(DropSpoofed)
		return
	}
	now := in.at
	host := hostOf(in.src.Addr())
	t := g.xfer.serving[host]
	if t == nil || t.id != m.ID || t.cookie != m.Cookie {
		if t == nil && !g.roomToServe(now) {
			g.stats.drop(DropAnswerLimited)
			return
		}
		if g.xfer.serving == nil {
			g.xfer.serving = make(map[netip.Addr]*serving, 2*g.cfg.MaxTransfers)
		}
		snap := g.snapshot(now, in.src, in.ifIndex)
		t = &serving{id: m.ID, cookie: m.Cookie, snap: snap, served: make([]uint8, snap.pages()), left: snap.pages()}
		g.xfer.serving[host] = t
		g.stats.transfers.Add(1)
	}
	t.last, t.to = g.at(now), in.src
	if m.Page >= t.snap.pages() || t.served[m.Page] >= pageServes {
		g.stats.drop(DropAnswerLimited)
		return
	}
	if len(t.queue) > 0 || !g.xfer.pageTok.take(now, g.cfg.StateRate, g.pageBurst()) {
		g.queuePull(t, m.Page, now)
		return
	}
	g.sendPage(t, m.Page)
}

// sendPage sends page of the transfer t.
func (g *Group) sendPage(t *serving, page int) {
	if t.served[page] == 0 {
		t.left--
	}
	t.served[page]++
	s := t.snap
	p := codec.Message{Kind: codec.Page, Group: g.cfg.Name, ID: g.me().ID, Cookie: t.cookie,
		Page: page, Pages: s.pages(), Entries: s.entries[s.starts[page]:s.starts[page+1]]}
	b, err := g.cfg.Codec.Encode(nil, &p)
	if err != nil {
		g.log.Debug("page failed", "page", page, "error", err)
		return
	}
	g.stats.pagesSent.Add(1)
	g.sendTo(b, t.to)
}

// queuePull keeps a pull of page that found no page token until one
// comes: at most pullWindow of a transfer, and a page once. Past that
// the pull is dropped, as the puller has no more in flight unless it
// resent them.
func (g *Group) queuePull(t *serving, page int, now time.Time) {
	if len(t.queue) >= pullWindow || slices.Contains(t.queue, page) {
		g.stats.drop(DropAnswerLimited)
		return
	}
	t.queue = append(t.queue, page)
	g.armServe(now)
}

// armServe schedules a taskServe for when the next page token comes.
func (g *Group) armServe(now time.Time) {
	if g.xfer.serveDue {
		return
	}
	g.xfer.serveDue = true
	g.xfer.pageTok.refill(now, g.cfg.StateRate, g.pageBurst())
	g.sched.push(task{at: g.at(now.Add(g.xfer.pageTok.wait(g.cfg.StateRate))), kind: taskServe})
}

// serveQueued runs taskServe: queued pulls are answered while page tokens
// last, a page from each transfer in turn (at most 2 × MaxTransfers).
func (g *Group) serveQueued(now time.Time) {
	g.xfer.serveDue = false
	for sent := true; sent; {
		sent = false
		for _, t := range g.xfer.serving {
			if len(t.queue) == 0 {
				continue
			}
			if !g.xfer.pageTok.take(now, g.cfg.StateRate, g.pageBurst()) {
				g.armServe(now)
				return
			}
			page := t.queue[0]
			t.queue = t.queue[1:]
			g.sendPage(t, page)
			sent = true
		}
	}
}

// pageBurst is how many pages may go at once: a pull window, or fewer
// when StateRate is below it.
func (g *Group) pageBurst() float64 { return max(1, min(pullWindow, g.cfg.StateRate)) }

// roomToServe reports whether a new transfer may start: fewer than
// MaxTransfers are under way. A transfer is under way until each of its
// pages has been sent once, or it is idle for transferIdle. Those sent in
// full are kept, so that a page lost and pulled again is served at most
// pageServes times, until they are idle too, or until room is needed: the
// table keeps at most 2 × MaxTransfers.
func (g *Group) roomToServe(now time.Time) bool {
	busy := 0
	var oldest netip.Addr
	var oldestAt instant
	for a, t := range g.xfer.serving {
		switch {
		case now.Sub(g.time(t.last)) >= transferIdle:
			delete(g.xfer.serving, a)
		case t.left > 0:
			busy++
		case oldestAt == 0 || t.last < oldestAt:
			oldest, oldestAt = a, t.last
		}
	}
	if busy >= g.cfg.MaxTransfers {
		return false
	}
	if len(g.xfer.serving) >= 2*g.cfg.MaxTransfers {
		delete(g.xfer.serving, oldest)
	}
	return true
}

// takeOffer takes one of the first two offers that come while we join: the
// first is pulled, the second kept to fall back to.
func (g *Group) takeOffer(in inbound) {
	m := &in.msg
	x := &g.xfer
	switch {
	case x.done || x.offers >= 2 || in.at.Sub(g.epoch) > time.Second+offersFor:
		return // not joining: nothing to pull
	case x.pull != nil && x.pull.id == m.ID, x.fallback != nil && x.fallback.id == m.ID:
		return // a copy, by another path
	case m.Pages == 0:
		return // nothing to pull: wait for another
	case m.Pages > g.cfg.MaxPeers+1:
		g.stats.drop(DropPeerCap) // more than we could take: each page holds an entry at least
		return
	}
	x.cookies[x.offers] = m.Cookie
	x.offers++
	o := offerFrom{from: in.src, id: m.ID, cookie: m.Cookie, pages: m.Pages}
	if x.pull == nil {
		g.startPull(o, in.at)
		return
	}
	x.fallback = &o
}

// startPull starts pulling the pages of o.
func (g *Group) startPull(o offerFrom, now time.Time) {
	p := &pulling{offerFrom: o, got: make([]bool, o.pages), left: o.pages}
	g.xfer.pull = p
	g.log.Debug("pulling the table", "from", o.id, "pages", o.pages)
	g.fillPulls(now)
}

// fillPulls sends pulls while fewer than pullWindow are in flight, and ends
// the transfer when every page came.
func (g *Group) fillPulls(now time.Time) {
	p := g.xfer.pull
	if p.left == 0 {
		g.xfer.pull, g.xfer.fallback, g.xfer.done = nil, nil, true
		g.log.Debug("table pulled", "from", p.id, "pages", p.pages)
		return
	}
	for len(p.inflight) < pullWindow && p.next < p.pages {
		if !p.got[p.next] {
			p.inflight = append(p.inflight, pullFlight{page: p.next, sent: g.at(now), tries: 1})
			g.sendPull(p, p.next)
		}
		p.next++
	}
	g.armPulls()
}

func (g *Group) sendPull(p *pulling, page int) {
	m := codec.Message{Kind: codec.Pull, Group: g.cfg.Name, ID: g.me().ID, Cookie: p.cookie, Page: page}
	b, err := g.cfg.Codec.Encode(nil, &m)
	if err != nil {
		g.log.Debug("pull failed", "error", err)
		return
	}
	g.sendTo(b, p.from)
}

// armPulls schedules a taskPull when the oldest pull in flight is due
// again.
func (g *Group) armPulls() {
	p := g.xfer.pull
	if len(p.inflight) == 0 {
		p.armed = 0
		return
	}
	due := p.inflight[0].sent
	for _, f := range p.inflight[1:] {
		due = min(due, f.sent)
	}
	due += instant(pullResend)
	if p.armed != 0 && p.armed <= due {
		return // the task due first is scheduled
	}
	p.armed = due
	g.sched.push(task{at: due, kind: taskPull})
}

// pullsDue runs taskPull: pulls without their page are sent again, and a
// page that stays missing makes us fall back to the other offer.
func (g *Group) pullsDue(at instant, now time.Time) {
	p := g.xfer.pull
	if p == nil || at != p.armed {
		return // stale
	}
	p.armed = 0
	for i := range p.inflight {
		f := &p.inflight[i]
		if g.time(f.sent).Add(pullResend).After(now) {
			continue
		}
		if f.tries > pullResends {
			g.log.Debug("offer failed", "from", p.id, "page", f.page)
			g.xfer.pull = nil
			if o := g.xfer.fallback; o != nil {
				g.xfer.fallback = nil
				g.startPull(*o, now)
			} else {
				g.xfer.done = true
			}
			return
		}
		f.sent, f.tries = g.at(now), f.tries+1
		g.sendPull(p, f.page)
	}
	g.armPulls()
}

// takePage takes a page of the transfer we pull.
func (g *Group) takePage(in inbound) {
	m := &in.msg
	p := g.xfer.pull
	if p == nil || in.src != p.from || m.ID != p.id || m.Cookie != p.cookie {
		// A page of an offer we took comes late (a second copy, or from
		// the offer we fell back from): not forged.
		if x := &g.xfer; x.offers == 0 || x.cookies[0] != m.Cookie && (x.offers == 1 || x.cookies[1] != m.Cookie) {
			g.stats.drop(DropSpoofed)
		}
		return
	}
	if !p.received && m.Pages != p.pages {
		// The sender's table changed between its offer and our first
		// pull: the pages say how many it has now.
		if m.Pages > g.cfg.MaxPeers+1 {
			g.stats.drop(DropPeerCap)
			return
		}
		p.resize(m.Pages)
	}
	p.received = true
	if m.Pages != p.pages || p.got[m.Page] {
		return // a copy of one we have, or not of this transfer
	}
	p.got[m.Page] = true
	p.left--
	for i, f := range p.inflight {
		if f.page == m.Page {
			p.inflight = append(p.inflight[:i], p.inflight[i+1:]...)
			break
		}
	}
	g.stats.pagesReceived.Add(1)
	g.takeEntries(in)
	if g.xfer.pull == p {
		g.fillPulls(in.at)
	}
}

// resize makes p a transfer of n pages, none received.
func (p *pulling) resize(n int) {
	p.pages, p.got, p.left = n, make([]bool, n), n
	kept := p.inflight[:0]
	for _, f := range p.inflight {
		if f.page < n {
			kept = append(kept, f)
		}
	}
	p.inflight = kept
	p.next = min(p.next, n)
}

// takeEntries tracks the entries of a page as joined members, without a
// probe, but for the page's sender's own entry where Joined waits for a
// probe (Config.JoinBeforeProbe false): a member cannot vouch for itself,
// so that entry is held pending and probed at once, and joins as any
// pending peer does. An entry passes the checks an announcement's URIs pass
// (parsePeer), its Addr standing for the source of the member's
// datagrams: with ForeignHealthHosts false its health host must be that
// Addr's host, and a loopback Addr is taken only from a page whose own
// source is loopback (a member on this host). The entry without an Addr is
// the page's sender, whose source we saw. Entries the sender holds
// Suspect, and members we know already, are skipped; MaxPeers holds.
//
// A peer pending here (heard while we pull: its ping, its announcement,
// or a forgery under its ID) is taken from the entry in its place: the
// sender admitted it, and nobody would vouch for it to us, who pulled
// (docs/design/frugal.md, "Members pending at a newcomer").
func (g *Group) takeEntries(in inbound) {
	m := &in.msg
	var added []string
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.ID == g.me().ID || e.Suspect {
			continue
		}
		var pending *peerState
		if st := g.peers[e.ID]; st != nil {
			if st.joined {
				continue
			}
			pending = st
		}
		src := e.Addr
		switch {
		case e.ID == m.ID:
			src = in.src
		case !src.IsValid() || hostOf(src.Addr()).IsLoopback() && !hostOf(in.src.Addr()).IsLoopback():
			g.stats.drop(DropNotAllowed)
			continue
		}
		if g.addEntry(e, src, pending, in, e.ID != m.ID || g.cfg.JoinBeforeProbe) {
			added = append(added, e.ID)
		}
	}
	if len(added) == 0 {
		return
	}
	g.updateMode(in.at)
	if !g.bounded {
		// Their probe chains start within an interval, as they would had
		// we probed them on joining; bounded probing has its rounds.
		for _, id := range added {
			if st := g.peers[id]; st != nil {
				g.probeAt(id, st, in.at.Add(mrand.N(g.cfg.ProbeInterval)))
			}
		}
	}
}

// addEntry tracks e, heard from src by way of the page in, in place of
// pending, our state of it if we hold it pending: as a joined member when
// join is set, and reports whether it did, or else as a pending peer
// cleared for probing, whose probe starts at once.
func (g *Group) addEntry(e *codec.Entry, src netip.AddrPort, pending *peerState, in inbound, join bool) bool {
	pin := inbound{msg: codec.Message{ID: e.ID, Health: e.Health, Comms: e.Comms, Meta: e.Meta},
		src: src, ifIndex: in.ifIndex, at: in.at}
	p, err := g.parsePeer(&pin)
	if err != nil {
		g.dropPeer(err)
		g.log.Debug("ignoring entry", "peer", e.ID, "from", in.src, "error", err)
		return false
	}
	if pending != nil {
		g.remove(e.ID, pending, Failed, in.at) // no event: it never joined
	}
	if len(g.peers) >= g.cfg.MaxPeers && !g.makeRoom(in.at) {
		g.stats.drop(DropPeerCap)
		return false
	}
	now := in.at
	st := &peerState{
		member:      Member{Peer: p, Addr: src, IfIndex: in.ifIndex, LastSeen: now, Health: 1},
		health:      e.Health,
		comms:       e.Comms,
		tracker:     g.cfg.Policy.Track(now),
		lastHeard:   g.at(now),
		path:        pathOf(pin),
		pathHeard:   g.at(now),
		gen:         g.newGen(),
		extended:    e.Extended,
		pings:       e.Pings,
		version:     e.Version,
		healthFails: uint8(min(e.HealthFails, 255)),
	}
	st.tracker.Observe(score.Observation{Event: score.Heartbeat, At: now})
	a := st.tracker.Assess(now)
	st.member.Health, st.member.Verdict = a.Health, a.Verdict
	g.mu.Lock()
	g.peers[e.ID] = st
	g.pending++ // join counts it back
	if join {
		g.join(st, now)
	}
	g.mu.Unlock()
	g.armSilence(e.ID, st, now)
	if !join {
		st.admitByOwnProbe(now)
		g.tracked(e.ID)
		g.probe(e.ID, st, now)
	}
	return join
}

// padQuery pads a watcher's query with metadata (which no receiver keeps:
// a watcher is tracked by nobody) so that an offer from a member whose ID
// is up to watcherPad bytes long is no longer than it, and may answer it.
func (g *Group) padQuery(m *codec.Message) error {
	o := codec.Message{Kind: codec.Offer, Group: g.cfg.Name, ID: strings.Repeat("x", watcherPad), Pages: codec.MaxPages}
	ob, err := g.cfg.Codec.Encode(nil, &o)
	if err != nil {
		return err
	}
	m.Meta = map[string]string{"pad": ""}
	for range 3 {
		qb, err := g.cfg.Codec.Encode(nil, m)
		if err != nil {
			return err
		}
		if len(qb) >= len(ob) {
			return nil
		}
		m.Meta["pad"] += strings.Repeat("0", len(ob)-len(qb))
	}
	return errors.New("discovery: cannot pad the query")
}
