package discovery_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/mem"
)

// transferring turns on the state transfer (it comes with pings), and
// makes announcements so rare that none is sent while a test runs: a
// member then learns the group only by transfer, and a newcomer's
// members only by its query.
func transferring(c *discovery.Config) {
	c.PingInterval = time.Second
	c.AnnounceInterval = time.Hour
}

// member is one member of a lab group and its endpoint.
type member struct {
	g  *discovery.Group
	ep *mem.Endpoint
}

// joinGroup starts n members that transfer, one after another, and waits
// until each knows all the others.
func (l *lab) joinGroup(n int, mutate ...func(*discovery.Config)) map[string]member {
	l.t.Helper()
	// Long enough for the probes of the newcomer, which wait for tokens
	// of MaxProbeRate: F's table must hold every member when the next
	// newcomer pulls it.
	return l.joinGroupEvery(n, 50*time.Millisecond, mutate...)
}

// joinGroupEvery is joinGroup with pause between two joins.
func (l *lab) joinGroupEvery(n int, pause time.Duration, mutate ...func(*discovery.Config)) map[string]member {
	l.t.Helper()
	ms := make(map[string]member, n)
	for i := range n {
		name := fmt.Sprintf("member-%03d", i)
		g, ep := l.join(name, append([]func(*discovery.Config){transferring}, mutate...)...)
		ms[name] = member{g, ep}
		advance(pause)
	}
	for name, m := range ms {
		require.Equal(l.t, n-1, m.g.Stats().Members, "%s knows every other member", name)
	}
	return ms
}

// firstTwo returns F and S of the newcomer id among members: the two
// lowest in the first-prober ranking (FNV-1a 64 of both IDs, each after
// its length), as discovery/admit.go ranks them.
func firstTwo(id string, members map[string]member) (string, string) {
	rank := func(member string) uint64 {
		h := fnv.New64a()
		for _, s := range []string{id, member} {
			var n [4]byte
			binary.BigEndian.PutUint32(n[:], uint32(len(s)))
			h.Write(n[:])
			h.Write([]byte(s))
		}
		return h.Sum64()
	}
	names := make([]string, 0, len(members))
	for name := range members {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		ra, rb := rank(a), rank(b)
		switch {
		case ra < rb:
			return -1
		case ra > rb:
			return 1
		}
		return strings.Compare(a, b)
	})
	return names[0], names[1]
}

// A newcomer learns a group of 200 from one transfer, at once, and only F
// and S send anything because of it.
func TestNewcomerLearnsByTransfer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		// Pings held off (one an hour), so that what members send is
		// the newcomer's join alone.
		rarePings := func(c *discovery.Config) { c.PingInterval = time.Hour }
		ms := l.joinGroup(200, rarePings)
		f, s := firstTwo("newcomer", ms)
		before := map[string]discovery.Stats{}
		for name, m := range ms {
			before[name] = m.g.Stats()
		}

		start := time.Now()
		x, _ := l.join("newcomer", transferring, rarePings)
		rec := record(x)
		for x.Stats().Members < 200 && time.Since(start) < time.Second {
			advance(time.Millisecond)
		}
		took := time.Since(start)
		require.Equal(t, 200, x.Stats().Members, "the newcomer lists every member")
		assert.LessOrEqual(t, took, 50*time.Millisecond)
		assert.Len(t, rec.all(), 200, "a Joined event each")
		xs := x.Stats()
		assert.Equal(t, uint64(1), xs.ProbesOK+xs.ProbesFailed, "the newcomer probes F only, which cannot vouch for itself")
		assert.Positive(t, xs.PagesReceived)
		t.Logf("figures: %d members listed after %v (synctest), %d pages, %d datagrams sent by the newcomer",
			xs.Members, took, xs.PagesReceived, xs.Sent)

		var senders []string
		var served uint64
		for name, m := range ms {
			now, was := m.g.Stats(), before[name]
			if now.Sent > was.Sent {
				senders = append(senders, name)
			}
			served += now.TransfersServed - was.TransfersServed
			if name == f || name == s {
				assert.Equal(t, uint64(1), now.OffersSent-was.OffersSent, "%s offers once", name)
			}
		}
		slices.Sort(senders)
		want := []string{f, s}
		slices.Sort(want)
		assert.Equal(t, want, senders, "only F and S send anything")
		assert.Equal(t, uint64(1), served, "the newcomer pulls one transfer")
		assert.Equal(t, xs.PagesReceived, ms[f].g.Stats().PagesSent+ms[s].g.Stats().PagesSent-
			before[f].PagesSent-before[s].PagesSent, "every page sent came")
	})
}

// A transfer of more pages than a pull window goes at StateRate, not at
// a window per pullResend: pulls that find no page token wait for one
// (docs/design/frugal.md, "Pulls beyond the page bucket"). Before, each
// pull past the bucket's burst of 16 was dropped and sent again 100 ms
// later, and 100 pages took about 600 ms on a LAN without latency.
func TestTransferPaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		rarePings := func(c *discovery.Config) { c.PingInterval = time.Hour }
		// Two entries a page: 101 pages.
		blob := func(c *discovery.Config) { c.Self.Meta = map[string]string{"blob": strings.Repeat("b", 500)} }
		// A second between joins, so that the group forms without the
		// pacing too (with it, joinGroup's 50 ms do).
		ms := l.joinGroupEvery(200, time.Second, rarePings, blob)
		before := map[string]discovery.Stats{}
		for name, m := range ms {
			before[name] = m.g.Stats()
		}

		start := time.Now()
		x, _ := l.join("newcomer", transferring, rarePings)
		for x.Stats().Members < 200 && time.Since(start) < 2*time.Second {
			advance(time.Millisecond)
		}
		took := time.Since(start)
		xs := x.Stats()
		require.Equal(t, 200, xs.Members, "the newcomer lists every member")
		require.Greater(t, xs.PagesReceived, uint64(6*16), "pages: several pull windows")
		// 16 pages at once, the rest at 4,000 a second: 21 ms.
		assert.LessOrEqual(t, took, 50*time.Millisecond, "%d pages at StateRate", xs.PagesReceived)
		var sent, limited uint64
		for name, m := range ms {
			now, was := m.g.Stats(), before[name]
			sent += now.PagesSent - was.PagesSent
			limited += now.Dropped[discovery.DropAnswerLimited] - was.Dropped[discovery.DropAnswerLimited]
		}
		assert.Equal(t, xs.PagesReceived, sent, "each page sent once: no pull was sent again")
		assert.Zero(t, limited, "no pull dropped")
		t.Logf("figures: %d pages in %v (synctest)", xs.PagesReceived, took)
	})
}

// cutFirstOfferer is a newcomer's transport that hears nothing more from
// the member whose offer came first: that member is cut off after its
// offer, as if it died then.
type cutFirstOfferer struct {
	*mem.Endpoint
	mu      sync.Mutex
	cut     netip.AddrPort
	cutID   string
	dropped int
}

func (c *cutFirstOfferer) Receive(buf []byte) (transport.Packet, error) {
	for {
		p, err := c.Endpoint.Receive(buf)
		if err != nil {
			return p, err
		}
		var m codec.Message
		offer := (pipe.Codec{}).Decode(buf[:p.N], &m) == nil && m.Kind == codec.Offer
		c.mu.Lock()
		switch {
		case c.cut.IsValid() && p.Src == c.cut:
			c.dropped++
			c.mu.Unlock()
			continue
		case offer && !c.cut.IsValid():
			c.cut, c.cutID = p.Src, m.ID
		}
		c.mu.Unlock()
		return p, nil
	}
}

// The member whose offer is pulled goes silent after it: the newcomer
// pulls the table from the other offer.
func TestTransferFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		ms := l.joinGroup(20)
		before := map[string]uint64{}
		for name, m := range ms {
			before[name] = m.g.Stats().PagesSent
		}
		var cut *cutFirstOfferer
		start := time.Now()
		x, _ := l.join("newcomer", transferring, func(c *discovery.Config) {
			cut = &cutFirstOfferer{Endpoint: c.Transport.(*mem.Endpoint)}
			c.Transport = cut
		})
		for x.Stats().Members < 20 && time.Since(start) < 5*time.Second {
			advance(10 * time.Millisecond)
		}
		require.Equal(t, 20, x.Stats().Members, "the newcomer lists every member")
		assert.Less(t, time.Since(start), time.Second, "after 4 sends of a pull, 100 ms apart")

		cut.mu.Lock()
		cutID, dropped := cut.cutID, cut.dropped
		cut.mu.Unlock()
		f, s := firstTwo("newcomer", ms)
		require.Contains(t, []string{f, s}, cutID, "F or S offered first")
		other := f
		if cutID == f {
			other = s
		}
		assert.Positive(t, dropped, "the cut member answered pulls, unheard")
		assert.Positive(t, ms[cutID].g.Stats().PagesSent-before[cutID])
		assert.Equal(t, x.Stats().PagesReceived, ms[other].g.Stats().PagesSent-before[other], "every page came from the other offer")
	})
}

// forgeBeforePage is a newcomer's transport that hands it, just before the
// first page, a forged announcement under a member's ID from another
// address: the newcomer holds that member pending when the page naming it
// comes.
type forgeBeforePage struct {
	*mem.Endpoint
	victim string
	mu     sync.Mutex
	held   *transport.Packet // the first page, kept while the forgery goes first
	page   []byte
	forged bool
}

func (f *forgeBeforePage) Receive(buf []byte) (transport.Packet, error) {
	f.mu.Lock()
	if f.held != nil {
		p := *f.held
		p.N = copy(buf, f.page)
		f.held = nil
		f.mu.Unlock()
		return p, nil
	}
	f.mu.Unlock()
	p, err := f.Endpoint.Receive(buf)
	if err != nil {
		return p, err
	}
	var m codec.Message
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.forged || (pipe.Codec{}).Decode(buf[:p.N], &m) != nil || m.Kind != codec.Page {
		return p, nil
	}
	f.forged = true
	f.held, f.page = &p, slices.Clone(buf[:p.N])
	forged := codec.Message{Kind: codec.Announce, Group: "web", ID: f.victim,
		Health: "tcp://forged.test:1", Comms: "tcp://forged.test:2"}
	b, err := (pipe.Codec{}).Encode(nil, &forged)
	if err != nil {
		return transport.Packet{}, err
	}
	fake := p.Src.Addr().Next()
	return transport.Packet{N: copy(buf, b), Src: netip.AddrPortFrom(fake, 9), Dst: p.Dst}, nil
}

// A member the newcomer holds pending when its table's page comes (heard
// while it pulls, or forged under the member's ID) is taken from the page:
// the page's sender admitted it, and nobody vouches for it to the
// newcomer. Before, the page's entry was skipped and the member stayed
// pending until its next announcement, minutes away
// (docs/design/frugal.md, "Members pending at a newcomer").
func TestPendingTakenFromPage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		ms := l.joinGroup(20)
		f, _ := firstTwo("newcomer", ms)
		victim := "member-007"
		if victim == f {
			victim = "member-008"
		}
		var fb *forgeBeforePage
		start := time.Now()
		x, _ := l.join("newcomer", transferring, func(c *discovery.Config) {
			fb = &forgeBeforePage{Endpoint: c.Transport.(*mem.Endpoint), victim: victim}
			c.Transport = fb
		})
		for x.Stats().Members < 20 && time.Since(start) < 5*time.Second {
			advance(10 * time.Millisecond)
		}
		fb.mu.Lock()
		forged := fb.forged
		fb.mu.Unlock()
		require.True(t, forged, "the forgery went ahead of the first page")
		require.Equal(t, 20, x.Stats().Members, "the newcomer lists every member")
		m, ok := x.Member(victim)
		require.True(t, ok, "%s is listed", victim)
		assert.Equal(t, healthURI(victim).String(), m.HealthURI.String(), "with the URIs of the page, not the forgery's")
		assert.Equal(t, ms[victim].ep.Addr(), m.Addr, "and its own address")
		assert.Zero(t, x.Stats().Pending, "nothing left pending")
	})
}

// querier is a test's own endpoint that queries with p=1 and pulls as the
// test says.
type querier struct {
	id string
	ep *mem.Endpoint
	mu sync.Mutex
	// offers and pages heard, by the sender's ID
	offers map[string]codec.Message
	pages  map[string]map[int]bool
}

func (l *lab) querier(id string) *querier {
	q := &querier{id: id, offers: map[string]codec.Message{}, pages: map[string]map[int]bool{}}
	q.ep = l.listen(func(m *codec.Message) {
		q.mu.Lock()
		defer q.mu.Unlock()
		switch m.Kind {
		case codec.Offer:
			q.offers[m.ID] = *m
		case codec.Page:
			if q.pages[m.ID] == nil {
				q.pages[m.ID] = map[int]bool{}
			}
			q.pages[m.ID][m.Page] = true
		}
	})
	return q
}

func (q *querier) query(t *testing.T) { q.queryPings(t, true) }

// queryPings sends the querier's query, saying it pings or not.
func (q *querier) queryPings(t *testing.T, pings bool) {
	b, err := (pipe.Codec{}).Encode(nil, &codec.Message{Kind: codec.Query, Group: "web", ID: q.id,
		Health: "tcp://" + q.id + ":1", Comms: "tcp://" + q.id + ":1", Pings: pings})
	require.NoError(t, err)
	require.NoError(t, q.ep.Send(b))
}

func (q *querier) pull(t *testing.T, id string, cookie [8]byte, page int, to netip.AddrPort) {
	b, err := (pipe.Codec{}).Encode(nil, &codec.Message{Kind: codec.Pull, Group: "web", ID: id, Cookie: cookie, Page: page})
	require.NoError(t, err)
	require.NoError(t, q.ep.SendTo(b, to))
}

func (q *querier) received() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, ps := range q.pages {
		n += len(ps)
	}
	return n
}

// A pull without the cookie of an offer to its sender gets nothing, and is
// counted spoofed: a forger cannot aim pages at a victim.
func TestPullWithoutCookie(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		ms := l.joinGroup(3)
		a, b := l.querier("querier-a"), l.querier("querier-b")
		a.query(t)
		synctest.Wait()
		a.mu.Lock()
		offers := maps2slice(a.offers)
		a.mu.Unlock()
		require.Len(t, offers, 2, "F and S offer")
		o := offers[0]
		src := ms[o.ID].ep.Addr()
		was := ms[o.ID].g.Stats()

		// b pulls with a's cookie and ID, from its own address, and with
		// a cookie of its own making.
		b.pull(t, "querier-a", o.Cookie, 0, src)
		b.pull(t, "querier-b", o.Cookie, 0, src)
		b.pull(t, "querier-b", [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, 0, src)
		synctest.Wait()
		assert.Zero(t, b.received(), "no page for a pull without a valid cookie")
		st := ms[o.ID].g.Stats()
		assert.Equal(t, was.PagesSent, st.PagesSent)
		assert.Equal(t, uint64(3), st.Dropped[discovery.DropSpoofed]-was.Dropped[discovery.DropSpoofed])

		// The querier itself, with its cookie, gets the page.
		a.pull(t, "querier-a", o.Cookie, 0, src)
		synctest.Wait()
		assert.Equal(t, 1, a.received())
		assert.Equal(t, was.PagesSent+1, ms[o.ID].g.Stats().PagesSent)

		// A page is served at most twice in a transfer.
		a.pull(t, "querier-a", o.Cookie, 0, src)
		a.pull(t, "querier-a", o.Cookie, 0, src)
		synctest.Wait()
		st = ms[o.ID].g.Stats()
		assert.Equal(t, was.PagesSent+2, st.PagesSent)
		assert.Equal(t, uint64(1), st.Dropped[discovery.DropAnswerLimited]-was.Dropped[discovery.DropAnswerLimited])
	})
}

func maps2slice(m map[string]codec.Message) []codec.Message {
	out := make([]codec.Message, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b codec.Message) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// A watcher pulls the table too: its padded query is long enough for an
// offer.
func TestWatcherPulls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		ms := l.joinGroup(20)
		start := time.Now()
		w, _ := l.join("", transferring, func(c *discovery.Config) {
			c.Passive = true
			c.Self = discovery.Peer{}
		})
		for w.Stats().Members < 20 && time.Since(start) < time.Second {
			advance(time.Millisecond)
		}
		assert.Equal(t, 20, w.Stats().Members, "the watcher lists every member")
		assert.LessOrEqual(t, time.Since(start), 50*time.Millisecond)
		assert.Positive(t, w.Stats().PagesReceived)
		var offers, long uint64
		for _, m := range ms {
			offers += m.g.Stats().OffersSent
			long += m.g.Stats().OffersTooLong
		}
		assert.Zero(t, long, "no offer was longer than the watcher's query")
		for _, m := range ms {
			assert.Zero(t, m.g.Stats().Pending, "nobody tracks the watcher")
		}
	})
}

// A page's sender cannot vouch for itself: where Joined waits for a probe
// (JoinBeforeProbe false), a newcomer or a watcher that pulls a member's
// table lists the member only once its own probe of it passed. Listing
// its entry at once let a watcher with -wait-probe show an agent's service
// joined and healthy while the service's check failed (internal/cli
// TestAgentService, 1 loaded run in about 30).
func TestPageSenderProbedFirst(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config func(*discovery.Config)
	}{
		{"member", func(*discovery.Config) {}},
		{"watcher", func(c *discovery.Config) { c.Passive, c.Self = true, discovery.Peer{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t)
				f, _ := l.join("member-000", transferring, func(c *discovery.Config) { c.HealthInterval = -1 })
				advance(50 * time.Millisecond)
				host := healthURI("member-000").Host
				l.health.set(host, refuse)
				x, _ := l.join("newcomer", transferring, tc.config)
				advance(3 * time.Second)
				require.Positive(t, x.Stats().PagesReceived, "the newcomer pulled member-000's table")
				assert.Positive(t, l.health.count(host), "and probed member-000")
				assert.Zero(t, x.Stats().Members, "which fails its probes: not listed")

				// A sender that answers is listed once probed, at once.
				require.NoError(t, x.Close())
				advance(10 * time.Second)
				require.Zero(t, f.Stats().Members, "member-000 is alone again")
				l.health.set(host, up)
				probes := l.health.count(host)
				y, _ := l.join("newcomer-2", transferring, tc.config)
				advance(50 * time.Millisecond)
				require.Positive(t, y.Stats().PagesReceived)
				assert.Equal(t, 1, y.Stats().Members, "member-000 is listed")
				assert.Equal(t, probes+1, l.health.count(host), "after one probe")
			})
		})
	}
}

// Ten queriers at once: each member serves at most MaxTransfers of them
// at once, and sends at most StateRate pages a second after its burst, however
// hard they pull.
func TestTransferBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		const maxTransfers, rate = 1, 5
		// A second between joins: the members' pages refill.
		ms := l.joinGroupEvery(8, time.Second, func(c *discovery.Config) {
			c.MaxTransfers, c.StateRate = maxTransfers, rate
			// Two entries a page: several pages to pull.
			c.Self.Meta = map[string]string{"blob": strings.Repeat("b", 500)}
		})
		before := map[string]discovery.Stats{}
		for name, m := range ms {
			before[name] = m.g.Stats()
		}
		var qs []*querier
		for i := range 10 {
			q := l.querier(fmt.Sprintf("querier-%d", i))
			qs = append(qs, q)
			q.query(t)
		}
		synctest.Wait()
		start := time.Now()
		// Every 100 ms, each querier pulls every page it lacks of every
		// offer it has: far harder than a Group pulls.
		for time.Since(start) < 2*time.Second {
			busy := map[string]int{}               // member: queriers with some of its pages, not all
			for _, i := range rand.Perm(len(qs)) { // no querier first every time
				q := qs[i]
				q.mu.Lock()
				offers := maps2slice(q.offers)
				got := map[string]map[int]bool{}
				for id, ps := range q.pages {
					got[id] = maps2set(ps)
				}
				q.mu.Unlock()
				for _, o := range offers {
					if n := len(got[o.ID]); n > 0 && n < o.Pages {
						busy[o.ID]++
					}
					for p := range o.Pages {
						if !got[o.ID][p] {
							q.pull(t, q.id, o.Cookie, p, ms[o.ID].ep.Addr())
						}
					}
				}
			}
			for name, n := range busy {
				assert.LessOrEqual(t, n, maxTransfers, "%s: MaxTransfers at once", name)
			}
			advance(100 * time.Millisecond)
		}
		elapsed := time.Since(start).Seconds()
		var limited, sent uint64
		for name, m := range ms {
			now, was := m.g.Stats(), before[name]
			pages := now.PagesSent - was.PagesSent
			assert.LessOrEqual(t, float64(pages), rate+rate*elapsed, "%s: StateRate after a burst of StateRate", name)
			limited += now.Dropped[discovery.DropAnswerLimited] - was.Dropped[discovery.DropAnswerLimited]
			sent += pages
		}
		assert.Positive(t, sent, "pages were served")
		assert.Positive(t, limited, "the bounds refused pulls")
	})
}

func maps2set(m map[int]bool) map[int]bool {
	out := make(map[int]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// A query without p=1 (an older pir peer's) is answered as before, by
// every member's announcement, even where the members transfer.
func TestLegacyQueryAnsweredByAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		ms := l.joinGroup(5)
		var mu sync.Mutex
		heard := map[string]codec.Kind{}
		ep := l.listen(func(m *codec.Message) {
			mu.Lock()
			defer mu.Unlock()
			heard[m.ID] = m.Kind
		})
		offers := map[string]uint64{}
		for name, m := range ms {
			offers[name] = m.g.Stats().OffersSent
		}
		q := &querier{id: "legacy", ep: ep}
		q.queryPings(t, false)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, heard, len(ms), "every member answers")
		for id, k := range heard {
			assert.Equal(t, codec.Announce, k, "%s answers with its announcement", id)
		}
		for name, m := range ms {
			assert.Equal(t, offers[name], m.g.Stats().OffersSent, "%s offers nothing", name)
		}
	})
}

// An offer longer than the query it answers is not sent: every member
// answers by multicast instead, as for a legacy query, so that the querier
// hears the whole group, not F and S alone (which it would then keep
// until periodic announcements, minutes apart in a large group).
func TestOfferLongerThanQuery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		// IDs far longer than the querier's URIs: every offer is longer
		// than its query.
		long := strings.Repeat("m", 60)
		a, _ := l.join(long+"a", transferring)
		b, _ := l.join(long+"b", transferring)
		c, _ := l.join(long+"c", transferring)
		advance(50 * time.Millisecond)
		var mu sync.Mutex
		var kinds []codec.Kind
		ep := l.listen(func(m *codec.Message) {
			if m.Kind == codec.Evidence {
				// A vouch for q: the members are in their first
				// AnnounceInterval/4 (15 minutes here), and one that
				// ranks first prober of q and probes it in time vouches
				// (TestYoungMemberVouches). Not an answer.
				return
			}
			mu.Lock()
			defer mu.Unlock()
			kinds = append(kinds, m.Kind)
		})
		var tooLong, offers uint64
		gs := []*discovery.Group{a, b, c}
		for _, g := range gs {
			tooLong -= g.Stats().OffersTooLong
			offers -= g.Stats().OffersSent
		}
		q := &querier{id: "q", ep: ep}
		q.query(t)
		synctest.Wait()
		for _, g := range gs {
			tooLong += g.Stats().OffersTooLong
			offers += g.Stats().OffersSent
		}
		assert.Equal(t, uint64(2), tooLong, "F and S")
		assert.Zero(t, offers)
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, []codec.Kind{codec.Announce, codec.Announce, codec.Announce}, kinds, "every member answers by multicast")
	})
}

// A page's entries pass the checks an announcement's URIs pass, the
// entry's Addr standing for its source: with ForeignHealthHosts off, the
// health host must be that Addr's; a loopback Addr only from a loopback
// page source; no Addr only for the page's sender, whose source we see.
func TestPageEntriesChecked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		var mu sync.Mutex
		var pulls []codec.Message
		f := l.listen(func(m *codec.Message) {
			mu.Lock()
			defer mu.Unlock()
			if m.Kind == codec.Pull {
				pulls = append(pulls, *m)
			}
		})
		x, xep := l.join("newcomer", transferring, func(c *discovery.Config) { c.ForeignHealthHosts = false })
		synctest.Wait()
		send := func(m *codec.Message) {
			b, err := (pipe.Codec{}).Encode(nil, m)
			require.NoError(t, err)
			require.NoError(t, f.SendTo(b, xep.Addr()))
		}
		cookie := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
		send(&codec.Message{Kind: codec.Offer, Group: "web", ID: "fake-f", Cookie: cookie, Pages: 1})
		synctest.Wait()
		mu.Lock()
		require.Len(t, pulls, 1)
		assert.Equal(t, codec.Message{Kind: codec.Pull, Group: "web", ID: "newcomer", Cookie: cookie, Page: 0, Extended: true}, pulls[0])
		mu.Unlock()

		host := func(a netip.Addr) string { return "tcp://" + a.String() + ":1" }
		other := netip.MustParseAddr("198.18.7.7")
		entry := func(id string, addr netip.AddrPort, health string) codec.Entry {
			return codec.Entry{ID: id, Addr: addr, Health: health, Comms: health, Pings: true}
		}
		was := x.Stats().Dropped[discovery.DropNotAllowed]
		l.health.set(f.Addr().Addr().String()+":1", up) // the sender's entry is probed first
		send(&codec.Message{Kind: codec.Page, Group: "web", ID: "fake-f", Cookie: cookie, Page: 0, Pages: 1, Entries: []codec.Entry{
			entry("fake-f", netip.AddrPort{}, host(f.Addr().Addr())),                                   // the sender
			entry("good", netip.AddrPortFrom(other, 5000), host(other)),                                // health at its Addr
			entry("foreign", netip.AddrPortFrom(other, 5000), host(netip.MustParseAddr("198.18.7.8"))), // elsewhere
			entry("loop", netip.MustParseAddrPort("127.0.0.1:5000"), host(netip.MustParseAddr("127.0.0.1"))),
			entry("no-addr", netip.AddrPort{}, host(other)),
		}})
		synctest.Wait()
		assert.Equal(t, []string{"fake-f", "good"}, ids(x.Members()))
		assert.Equal(t, uint64(3), x.Stats().Dropped[discovery.DropNotAllowed]-was)
		m, ok := x.Member("fake-f")
		require.True(t, ok)
		assert.Equal(t, f.Addr(), m.Addr, "the sender's entry has the page's source")
	})
}

// A member whose URIs name no address (0.0.0.0, as `pir join` listens)
// lists itself in the pages it serves with the address of the link toward
// the querier, as its announcements on that link do: the newcomer hears
// no announcement of it while it joins, so without its own entry the
// newcomer would list every member but the one that served it, until the
// first ping between them repaired it (seen in pirbench's lab: 10 to 40 s).
func TestOffererWithoutAddressInPages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		ep := l.lan.Join()
		tr := &linked{Endpoint: ep, vias: map[string]int{}, links: []transport.Link{
			{Index: 1, Name: "eth0", Addr: ep.Addr().Addr()},
			{Index: 2, Name: "eth1", Addr: netip.MustParseAddr("fd42::7")},
		}}
		l.health.set(ep.Addr().Addr().String()+":4000", up)
		a, err := discovery.Join(context.Background(), discovery.Config{
			Name: "web", Transport: tr, Prober: l.health, ForeignHealthHosts: true,
			Self:         discovery.Peer{ID: "a", HealthURI: &url.URL{Scheme: "tcp", Host: "0.0.0.0:4000"}},
			PingInterval: time.Second, AnnounceInterval: time.Hour,
		})
		require.NoError(t, err)
		defer a.Close()
		synctest.Wait()

		// A query longer than an offer, which is then sent instead of
		// announcements by multicast (TestOfferLongerThanQuery).
		n, _ := l.join("newcomer-"+strings.Repeat("n", 40), transferring)
		advance(100 * time.Millisecond) // a tenth of a ping round: no repair yet
		m, ok := n.Member("a")
		require.True(t, ok, "the newcomer lists the member that served its table")
		assert.Equal(t, "tcp://"+ep.Addr().Addr().String()+":4000", m.HealthURI.String())
		assert.NotZero(t, n.Stats().PagesReceived, "learned by transfer")
	})
}
