package discovery

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"time"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/transport"
)

// This file holds what the Group sends of itself: its announcements, the
// query it joins with, the answers to other members' queries (coalesced
// and rate-limited), and the sending they share. links.go encodes them per
// interface when our URIs name no address.

// prepareAnnouncements encodes our announcement once, or, when our URIs
// name no host, checks that the transport can say which address each link
// has.
func (g *Group) prepareAnnouncements() error {
	me := g.me()
	unspecified, v4 := unspecifiedHost(me.HealthURI)
	if !unspecified {
		unspecified, v4 = unspecifiedHost(me.CommsURI)
	}
	if unspecified {
		ls, ok := g.cfg.Transport.(transport.LinkSender)
		if !ok {
			return fmt.Errorf("%w: Self.HealthURI %s names no host, and the transport cannot say which address each interface has; give an address",
				ErrInvalidConfig, me.HealthURI)
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

// selfUpdate is an Update for the owner: the record's new comms URI (nil:
// unchanged) and metadata, and where the owner says whether it took them.
type selfUpdate struct {
	comms *url.URL
	meta  map[string]string
	done  chan error // buffered
}

// Update changes what this member announces of itself: its comms URI
// (nil keeps the one it has) and its metadata, replaced whole (nil: none).
// Its ID and health URI stay. The new record is multicast at once and
// again 100 ms later (at most 4 records a second: a faster program's
// Updates are multicast as they stand each time), and its version, which
// pings and acks carry, grows: a member that missed both asks for it at
// its next ping exchange (in the legacy engine, every AnnounceInterval's
// announcement carries it). The other members emit Updated, at most one
// per member per half AnnounceInterval (Listener).
//
// Update fails with ErrClosed once the Group is leaving or stopping, with
// ctx's error when ctx ends before the Group takes the record, and with an
// error wrapping ErrInvalidConfig for a Passive group (it announces
// nothing) or an empty metadata key; and like Join when the codec cannot
// send the record, or the comms URI names no host and the transport cannot
// say which address each link has. The record announced is then
// unchanged.
func (g *Group) Update(ctx context.Context, comms *url.URL, meta map[string]string) error {
	if g.cfg.Passive {
		return fmt.Errorf("%w: a Passive group announces nothing to update", ErrInvalidConfig)
	}
	if _, ok := meta[""]; ok {
		return fmt.Errorf("%w: Meta has an empty key", ErrInvalidConfig)
	}
	if g.leaving.Load() {
		return ErrClosed
	}
	u := selfUpdate{comms: cloneURL(comms), meta: maps.Clone(meta), done: make(chan error, 1)}
	select {
	case g.updates <- u:
		return <-u.done
	case <-g.stopping:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("discovery: update: %w", ctx.Err())
	}
}

// takeUpdate makes u's URI (if any) and metadata our record, if we can
// announce it, and reports it as a health change is reported, within
// updateRate (reportUpdate). Transfers served from now on list it; those
// under way keep the table they started with.
func (g *Group) takeUpdate(u selfUpdate, now time.Time) error {
	p := *g.me()
	if u.comms != nil {
		p.CommsURI = u.comms
	}
	p.Meta = u.meta
	old, links, v4Only := g.self.Swap(&p), g.links, g.v4Only
	if err := g.prepareAnnouncements(); err != nil {
		g.self.Store(old)
		g.links, g.v4Only = links, v4Only
		return err
	}
	clear(g.xfer.snaps)
	g.log.Debug("own record updated", "comms", p.CommsURI, "meta", p.Meta)
	g.health.changes.Add(1)
	g.reportUpdate(now)
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
	m := codec.Message{Kind: codec.Query, Group: g.cfg.Name, ID: g.me().ID}
	g.selfArgs(&m)
	if g.pinging() {
		// Long enough for an offer to answer it (transfer.go).
		if err := g.padQuery(&m); err != nil {
			return fmt.Errorf("discovery: encode query: %w", err)
		}
	}
	b, err := g.cfg.Codec.Encode(nil, &m)
	if err != nil {
		return fmt.Errorf("discovery: encode query: %w", err)
	}
	if err := g.send(b); err != nil {
		return fmt.Errorf("discovery: send query: %w", err)
	}
	return nil
}

func (g *Group) encodeSelf(kind codec.Kind, extended bool) ([]byte, error) {
	me := g.me()
	m := codec.Message{
		Kind:     kind,
		Group:    g.cfg.Name,
		ID:       me.ID,
		Health:   me.HealthURI.String(),
		Comms:    me.CommsURI.String(),
		Meta:     me.Meta,
		Extended: extended,
	}
	g.selfArgs(&m)
	return g.cfg.Codec.Encode(nil, &m)
}

// claimRate is how many forged self-claims a second we answer at most
// (refuteClaim): a forger's spray costs us no more than 4 announcements a
// second.
const claimRate = 4

// forgedSelfClaim reports whether m, under our ID, says of us what we did
// not: a goodbye while we are not leaving, or an announcement or query
// whose record (ARGS p, v and h), URIs or metadata differ from ours. Our
// own messages, looped back to us, say what we sent: a copy of an earlier
// record, read after a change, passes for a forgery, and costs one
// announcement. It runs in the receiver, which owns nothing it compares
// with: our record's counters are atomic, and so is our record (me).
func (g *Group) forgedSelfClaim(m *codec.Message) bool {
	switch m.Kind {
	case codec.Goodbye:
		return !g.leaving.Load()
	case codec.Announce, codec.Query:
	default:
		return false // claims about nothing, or about others (an obituary about us is takeObituary's)
	}
	if speaksExtensions(m) && (m.Pings != g.pinging() ||
		m.Pings && (m.Version != g.version() || m.HealthFails != g.healthFails())) {
		return true
	}
	me := g.me()
	return !ourURI(m.Health, me.HealthURI) || !ourURI(m.Comms, me.CommsURI) || !maps.Equal(m.Meta, me.Meta)
}

// ourURI reports whether s is how we announce u: u itself, or, when u
// names every address (0.0.0.0, [::]), u with a link's address (sendSelf).
func ourURI(s string, u *url.URL) bool {
	if u == nil || s == u.String() {
		return u != nil || s == ""
	}
	if unspecified, _ := unspecifiedHost(u); !unspecified {
		return false
	}
	got, err := url.Parse(s)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(got.Hostname())
	return err == nil && withAddr(u, a).String() == s
}

// refuteClaim answers a forged self-claim (forgedSelfClaim, at most
// claimRate a second) with our true announcement, which the members that
// took the claim take instead: a lower version is taken too (takeRecord),
// and a member that removed us admits us again.
//
// Two members started with one ID refute each other this way, each at
// claimRate: the first refutation is logged as a warning that says so.
func (g *Group) refuteClaim(in inbound) {
	log := g.log.Debug
	if g.stats.claimsRefuted.Add(1) == 1 {
		log = g.log.Warn
	}
	log("a message under our ID that we did not send, answered with our announcement: a forgery, or another member with our ID",
		"kind", in.msg.Kind.String(), "from", in.src)
	g.announceNow()
}

// pinging reports whether this member runs the ping protocol
// (Config.PingInterval; Join turns it off over a transport whose unicast
// is shared, Config.setDefaults).
func (g *Group) pinging() bool { return g.cfg.PingInterval > 0 }

// selfArgs sets what our announcements and queries say in field 7 (ARGS)
// of the frugal engine (docs/design/frugal.md, section 2.5): nothing
// unless we ping, so that today's bytes stay as they were. A pinging
// member says so (p=1) and gives its record's version (v) and its count
// of consecutive failed self-checks (h, 0 unless HealthInterval is on).
func (g *Group) selfArgs(m *codec.Message) {
	if m.Kind == codec.Announce && !m.Extended && g.ann.plain {
		return // legacy mode's periodic announcement: plain, for originals (rtcp.go)
	}
	m.Pings = g.pinging()
	if m.Pings {
		m.Version = g.version()
		m.HealthFails = g.healthFails()
	}
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

func (g *Group) announceDelay() time.Duration {
	d := g.cfg.AnnounceInterval
	if j := g.cfg.AnnounceJitter; j > 0 {
		d = time.Duration(float64(d) * (1 + j*(2*rand.Float64()-1)))
	}
	return d
}

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
//
// A query that says its sender pings (codec.Message.Pings), heard while we
// ping, is answered instead by a state transfer, and only by the first
// two members of its sender's ranking (transfer.go): everyone else sends
// nothing.
//
// A query by unicast, which only a member repairing its copy of our record
// sends while we ping (repair.go), is answered by unicast, to a known
// member alone.
func (g *Group) answer(in inbound) {
	if g.announce == nil || g.pinging() && g.answerDirect(in) || g.answeredCopy(in) {
		return
	}
	if g.pinging() && in.msg.Pings {
		g.offer(in)
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

// Answers to queries: a member answers a query with its announcement, by
// multicast, at once while it has a token, and otherwise once more when
// the next token is due, for all the queries heard meanwhile. A forged
// query then costs each member at most one announcement to the group,
// never a datagram to the forged source, and a flood of them at most
// queryAnswerRate announcements a second. The burst lets a few members
// that start together, a few tens of milliseconds apart, each get their
// answers at once.
const (
	queryAnswerRate  = 10 // a second: one per 100 ms
	queryAnswerBurst = 4
)

// answerSoon answers a query now, or when the next token is due.
func (g *Group) answerSoon(now time.Time) {
	if g.answerDue {
		return // the answer scheduled covers this query too
	}
	if g.answerTok.take(now, queryAnswerRate, queryAnswerBurst) {
		// In the extension form, which original peers ignore (they have
		// our periodic announcements), so that the member that asked
		// learns we answer confirmation requests (pickHelpers).
		if err := g.sendSelf(codec.Announce, true); err != nil {
			g.log.Debug("answer failed", "error", err)
		}
		return
	}
	g.answerDue = true
	g.sched.push(task{at: g.at(now.Add(g.answerTok.wait(queryAnswerRate))), kind: taskAnswer})
}

func (g *Group) sendTo(b []byte, dst netip.AddrPort) {
	if g.leaving.Load() {
		return // as sendSelf: a ping or an answer would have us tracked again
	}
	err := g.cfg.Transport.SendTo(b, dst)
	g.countSend(err)
	if err != nil {
		g.log.Debug("send failed", "to", dst, "error", err)
	}
}
