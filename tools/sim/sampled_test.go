package sim_test

import (
	"bytes"
	minheap "container/heap"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/score"
	"github.com/pirlan/pir/transport"
)

// TestSampledSimulation measures bounded probing at sizes TestScaleSimulation
// cannot reach (10,000 members would cost it 10^8 deliveries per simulated
// second and 10^8 peer states), by simulating K real members in a modeled
// crowd of N-K.
//
// What is real: K discovery.Groups (PIR_SAMPLED_K, default 32) with default
// settings, on an in-memory LAN under synctest's clock. Every per-member
// figure comes from them: the probes they start, the bytes they send and
// receive, the confirmations and obituaries they count, and when each
// removes a vanished member. The victims are real members too: one at a
// time, one of the K is cut off the LAN and stops answering probes.
//
// What is modeled: the other N-K members, one object (crowd) that sends the
// K exactly what N-K real members would: each one's announcement every
// AnnounceInterval ± AnnounceJitter from its own address, answers to
// queries, evidence in answer to confirmation requests, and its own
// detection of the victim, which follows the Group's rules step by step
// (each step names the function it mirrors): the late probe of a ProbeFanout/N
// share, its bounded round's probes of the victim (one slot in a shuffled
// round of N-1), a real score.PhiAccrual tracker per crowd member fed with
// the victim's announcements and the probe results, confirmations that ask
// three random healthy members (real cfm datagrams to those that are real),
// probes on request, obituaries sent and taken, expiry.
//
// The model's limits, all of which leave the K's traffic and the victim's
// detection as they would be:
//   - crowd members do not track each other, nor the real members other
//     than the victim: their probes of those carry no datagrams (probes go
//     through the Prober, not the Transport), and with no loss nobody but
//     the victim is ever suspected. Asked about a live member, a crowd
//     member answers from the member's last announcement, and, when asked
//     to probe, with a probe that succeeds.
//   - crowd announcements go out on a 1 ms grid (the schedule itself is
//     exact), the resolution PhiAccrual keeps intervals in.
//   - a crowd member's round is taken as N-1 slots of ProbeInterval /
//     ProbeFanout, the victim in a uniformly random slot of each; where it
//     stood when the victim is chosen is drawn likewise. Members skipped
//     in a round (removed, probing) would shorten it by a slot or two.
//   - the probe caps (MaxProbes, MaxProbeRate) and the answer rate limit
//     are not modeled: a crowd member probes about 2 members a second and
//     answers a few requests, far below them.
//   - the crowd's trackers of a victim are built when it is chosen, from its
//     recorded announcement arrivals: every crowd member heard the same
//     announcements at the same instants, so this is the state trackers fed
//     all along would have.
//   - the crowd models bounded probing only (N-1 > ProbeAllUpTo), and a LAN
//     that loses nothing and delivers at once, as TestScaleSimulation's.
//     The crowd is there from the start; the K join it and learn it from
//     the answers to their queries, MaxProbeRate (200 probes a second)
//     setting how long that takes.
//
// PIR_SAMPLED lists the sizes (e.g. PIR_SAMPLED=1000,10000; unset:
// skipped). PIR_SAMPLED_CHECK lists sizes at which the same harness also
// runs every member real (K = N), side by side with the sampled run: the
// check that the model is faithful. PIR_SAMPLED_VICTIMS (default 5) is the
// number of victims.
//
//	PIR_SAMPLED_CHECK=200 PIR_SAMPLED_VICTIMS=15 go -C tools test -run SampledSimulation -v -timeout 1h ./sim/
//	PIR_SAMPLED=1000,10000 go -C tools test -run SampledSimulation -v -timeout 2h ./sim/
func TestSampledSimulation(t *testing.T) {
	sizes, check := envSizes(t, "PIR_SAMPLED"), envSizes(t, "PIR_SAMPLED_CHECK")
	if len(sizes)+len(check) == 0 {
		t.Skip("set PIR_SAMPLED (and PIR_SAMPLED_CHECK) to lists of group sizes to run the sampled simulation")
	}
	k := envInt(t, "PIR_SAMPLED_K", 32)
	victims := envInt(t, "PIR_SAMPLED_VICTIMS", 5)
	const window = 20 * time.Second
	for _, n := range check {
		t.Run(fmt.Sprintf("check N=%d", n), func(t *testing.T) {
			all := runSampled(t, simSpec{n: n, k: n, victims: victims, window: window})
			sampled := runSampled(t, simSpec{n: n, k: min(k, n), victims: victims, window: window})
			t.Log("\n" + sideBySide(all, sampled))
		})
	}
	for _, n := range sizes {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			r := runSampled(t, simSpec{n: n, k: min(k, n), victims: victims, window: window})
			t.Log("\n" + r.String())
		})
	}
}

// TestSampledMatchesReal runs one group both ways, every member real and 16
// real members in a modeled crowd, and checks that the figures agree and
// that every vanished member is found by the whole group, crowd included,
// the way the code finds it (never by expiry).
func TestSampledMatchesReal(t *testing.T) {
	const n = 48
	spec := simSpec{n: n, victims: 6, window: 10 * time.Second}
	spec.k = n
	all := runSampled(t, spec)
	spec.k = 16
	sampled := runSampled(t, spec)
	t.Log("\n" + sideBySide(all, sampled))

	for _, r := range []simResult{all, sampled} {
		require.Zero(t, r.expired, "%d real: a victim was removed by expiry, not detected", r.spec.k)
		require.Zero(t, r.falseRemovals, "%d real: a live member was removed", r.spec.k)
		require.Greater(t, r.obits, 0.0, "%d real: no member took an obituary", r.spec.k)
	}
	within := func(what string, got, want, tol float64) {
		t.Helper()
		require.InDelta(t, want, got, tol*want, "%s: sampled %.3f, all real %.3f", what, got, want)
	}
	within("probes per member per second", sampled.probes.mean, all.probes.mean, 0.1)
	within("bytes sent per member per second", sampled.sent.mean, all.sent.mean, 0.05)
	within("bytes received per member per second", sampled.received.mean, all.received.mean, 0.05)
	// A detection takes 2.6 to 3.7 s in the common case (the next
	// announcement due, LateAfter, ProbeTimeout and ConfirmTimeout), a
	// little more when no member probes late: 0.75 s between the means of
	// 6 is several standard deviations.
	within("mean detection", meanSeconds(sampled.detectAll()), meanSeconds(all.detectAll()), 0.75/meanSeconds(all.detectAll()))
	require.Positive(t, sampled.crowd.confirms, "the crowd confirmed no death")
	require.Positive(t, sampled.crowd.cfmAnswered, "the crowd answered no confirmation request")
}

// TestSampledCrowdAnswers checks the crowd's side of the protocol message
// by message, through a bare endpoint on the LAN: it answers queries,
// confirmation requests (probing on request) and keeps a member an
// obituary names while it has heard it within LateAfter; then, with only
// itself to find the vanished member, it finds it and tells the LAN.
func TestSampledCrowdAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 40
		w := newSimWorld(t, n, 1) // one real member, m00000, the victim
		defer w.close()
		victim := simName(0)
		raw := w.lan.join(simAddr(n))
		rawID := simName(n)
		w.health.set(rawID+":1", up)
		send := func(m codec.Message, dst netip.AddrPort) {
			t.Helper()
			m.Group = "web"
			m.ID = rawID
			b, err := pipe.Codec{}.Encode(nil, &m)
			require.NoError(t, err)
			if dst.IsValid() {
				require.NoError(t, raw.SendTo(b, dst))
			} else {
				require.NoError(t, raw.Send(b))
			}
		}

		// A query is answered by every member, each from its own address.
		send(codec.Message{Kind: codec.Query, Health: healthURI(rawID).String(), Comms: healthURI(rawID).String()}, netip.AddrPort{})
		advance(10 * time.Millisecond)
		answered := map[string]bool{}
		for _, in := range raw.received(t) {
			if in.msg.Kind == codec.Announce {
				require.Equal(t, simAddr(simIndex(in.msg.ID)), in.src, "answer from %s", in.msg.ID)
				answered[in.msg.ID] = true
			}
		}
		require.Len(t, answered, n, "every member answers the query")

		advance(5 * time.Second)
		w.crowd.setVictim(t, victim)
		helper := simAddr(7)
		raw.received(t) // announcements: not looked at

		// Asked to confirm with probe=1 and since=0, a member answers with
		// what it has and probes; the probe succeeds, so it tells again.
		send(codec.Message{Kind: codec.Confirm, Target: victim, Probe: true}, helper)
		advance(time.Millisecond)
		var evd []codec.Message
		for _, in := range raw.received(t) {
			if in.msg.Kind == codec.Evidence {
				require.Equal(t, helper, in.src)
				evd = append(evd, in.msg)
			}
		}
		require.Len(t, evd, 2, "an answer, then the news of the probe asked for")
		require.Equal(t, victim, evd[0].Target)
		require.True(t, evd[0].Heard >= 0 && evd[0].Heard < 1200*time.Millisecond, "heard %v ago", evd[0].Heard)
		require.GreaterOrEqual(t, evd[0].Probed, time.Duration(0), "the member probed it when it joined")
		require.Zero(t, evd[1].Probed, "the probe asked for")

		// A member it does not know, and itself.
		send(codec.Message{Kind: codec.Confirm, Target: "nobody"}, helper)
		send(codec.Message{Kind: codec.Confirm, Target: simName(7)}, helper)
		advance(time.Millisecond)
		evd = evd[:0]
		for _, in := range raw.received(t) {
			if in.msg.Kind == codec.Evidence {
				evd = append(evd, in.msg)
			}
		}
		require.Len(t, evd, 2)
		require.Equal(t, []time.Duration{-1, -1, 0, 0}, []time.Duration{evd[0].Heard, evd[0].Probed, evd[1].Heard, evd[1].Probed})

		// The victim vanishes. An obituary at once changes nothing: every
		// crowd member heard it within LateAfter.
		w.health.set(victim+":1", silent)
		w.obs[0].ep.cut.Store(true)
		send(codec.Message{Kind: codec.Obituary, Target: victim}, netip.AddrPort{})
		advance(time.Millisecond)
		removed, _, _ := w.crowd.removal()
		require.Zero(t, removed, "an obituary about a member heard within LateAfter is ignored")

		// Alone, the crowd finds it: a crowd member confirms, removes it
		// and multicasts an obituary; the others take it.
		at := time.Now()
		for {
			advance(100 * time.Millisecond)
			if removed, _, _ := w.crowd.removal(); removed == w.crowd.size {
				break
			}
			require.Less(t, time.Since(at), 15*time.Second, "the crowd never removed the victim")
		}
		_, expired, _ := w.crowd.removal()
		require.Zero(t, expired, "removed by detection, not expiry")
		st := w.crowd.snapshot()
		require.Positive(t, st.confirms)
		require.Positive(t, st.obitsSent)
		require.Positive(t, st.obitsTaken)
		var obit bool
		for _, in := range raw.received(t) {
			if in.msg.Kind == codec.Obituary && in.msg.Target == victim {
				require.True(t, simIndex(in.msg.ID) > 0 && simAddr(simIndex(in.msg.ID)) == in.src, "obituary from %s at %s", in.msg.ID, in.src)
				obit = true
			}
		}
		require.True(t, obit, "the crowd's obituary reaches the LAN as a datagram")
	})
}

// simSpec is one run of the sampled simulation.
type simSpec struct {
	n, k    int           // members, of which k real (k == n: no crowd)
	victims int           // members made to vanish, one at a time
	window  time.Duration // the steady-state measuring window
}

// runSampled runs spec in a synctest bubble of its own and returns the
// figures, with the wall time it took.
func runSampled(t *testing.T, spec simSpec) simResult {
	t.Helper()
	var r simResult
	start := time.Now()
	synctest.Test(t, func(t *testing.T) { r = simulateSampled(t, spec) })
	r.wall = time.Since(start)
	return r
}

// simulateSampled forms the group, measures the real members over the
// window, then makes victims vanish one at a time and times their
// removal. It runs inside a synctest bubble.
func simulateSampled(t *testing.T, spec simSpec) simResult {
	require.Greater(t, spec.k, spec.victims, "more real members than victims")
	w := newSimWorld(t, spec.n, spec.k)
	defer w.close()
	r := simResult{spec: spec}

	start := time.Now()
	for !everyoneSees(w.groups(), spec.n-1) {
		advance(time.Second)
		require.Less(t, time.Since(start), 5*time.Minute+time.Duration(spec.n)*10*time.Millisecond, "the group never formed")
	}
	r.formed = time.Since(start)
	advance(10 * time.Second) // settle: joins' first probes done

	type counts struct{ probes, sent, received uint64 }
	snap := func() []counts {
		c := make([]counts, len(w.obs))
		for i, o := range w.obs {
			c[i] = counts{o.prober.n.Load(), o.wire.sent.Load(), o.wire.received.Load()}
		}
		return c
	}
	before := snap()
	advance(spec.window)
	after := snap()
	var probes, sent, received []float64
	for i := range w.obs {
		s := spec.window.Seconds()
		probes = append(probes, float64(after[i].probes-before[i].probes)/s)
		sent = append(sent, float64(after[i].sent-before[i].sent)/s)
		received = append(received, float64(after[i].received-before[i].received)/s)
	}
	r.probes, r.sent, r.received = summarize(probes), summarize(sent), summarize(received)

	alive := slices.Clone(w.obs)
	var victims []*observer
	for i := range spec.victims {
		v := w.obs[i*(spec.k/spec.victims)]
		victims = append(victims, v)
		alive = slices.DeleteFunc(alive, func(o *observer) bool { return o == v })
		if w.crowd != nil {
			w.crowd.setVictim(t, v.name)
		}
		advance(rand.N(time.Second)) // vanish at a random point of its announcement cycle
		w.health.set(v.name+":1", silent)
		v.ep.cut.Store(true)
		at := time.Now()
		for !removedByAll(alive, v.name, w.crowd) {
			advance(100 * time.Millisecond)
			require.Less(t, time.Since(at), time.Minute, "member %s never removed by all", v.name)
		}
		first, last := time.Duration(1<<62), time.Duration(0)
		for _, o := range alive {
			e, _ := o.leftEvent(v.name)
			if e.Reason != discovery.Failed {
				r.expired++
			}
			d := e.At.Sub(at)
			first, last = min(first, d), max(last, d)
		}
		r.detectObs = append(r.detectObs, last)
		if w.crowd != nil {
			_, expired, lastAt := w.crowd.removal()
			r.expired += expired
			r.detectCrowd = append(r.detectCrowd, lastAt.Sub(at))
			first = min(first, w.crowd.firstRemoval().Sub(at))
			w.crowd.forget(v.name)
		}
		r.detectFirst = append(r.detectFirst, first)
		v.g.Close()
		advance(3 * time.Second) // let the probes and confirmations about it run out
	}

	for _, o := range alive {
		s := o.g.Stats()
		r.confirms += float64(s.Confirmations)
		r.obits += float64(s.Obituaries)
		r.refutes += float64(s.Refutations)
		r.failedProbes += float64(s.ProbesFailed)
		r.falseRemovals += o.leftOthers(victims)
	}
	per := float64(len(alive) * spec.victims)
	r.confirms, r.obits, r.refutes, r.failedProbes = r.confirms/per, r.obits/per, r.refutes/per, r.failedProbes/per
	if w.crowd != nil {
		r.crowd = w.crowd.snapshot()
		r.crowdSize = w.crowd.size
	}
	return r
}

// removedByAll reports whether every live real member and every crowd
// member has removed the member called id.
func removedByAll(alive []*observer, id string, c *crowd) bool {
	for _, o := range alive {
		if _, ok := o.leftEvent(id); !ok {
			return false
		}
	}
	if c == nil {
		return true
	}
	removed, _, _ := c.removal()
	return removed == c.size
}

// simWorld is one simulated group: the LAN, the real members and the
// crowd.
type simWorld struct {
	n, k   int
	lan    *simLAN
	health *fakeHealth
	crowd  *crowd // nil when every member is real
	obs    []*observer
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

// observer is one real member and what it is measured by.
type observer struct {
	name   string
	ep     *simEndpoint
	wire   *counted
	prober *countingProber
	g      *discovery.Group

	mu   sync.Mutex
	left map[string]discovery.Event
}

func (o *observer) leftEvent(id string) (discovery.Event, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.left[id]
	return e, ok
}

// leftOthers counts the members that o removed other than victims.
func (o *observer) leftOthers(victims []*observer) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for id := range o.left {
		if !slices.ContainsFunc(victims, func(v *observer) bool { return v.name == id }) {
			n++
		}
	}
	return n
}

// defaultMaxPeers is Config.MaxPeers's default.
var defaultMaxPeers = discovery.DefaultConfig("web", nil).MaxPeers

// newSimWorld starts the crowd (members k to n-1) and then the k real
// members (0 to k-1), 50 at a time, as simulate does. It must run inside
// a synctest bubble; close stops everything.
func newSimWorld(t *testing.T, n, k int) *simWorld {
	w := &simWorld{n: n, k: k, lan: newSimLAN(), health: newFakeHealth()}
	for i := range n {
		w.health.set(simName(i)+":1", up)
	}
	ctx, stop := context.WithCancel(context.Background())
	w.stop = stop
	if k < n {
		w.crowd = newCrowd(t, w.lan, w.health, k, n)
		w.lan.crowd = w.crowd
		w.wg.Go(func() { w.crowd.run(ctx) })
	}
	for i := range k {
		o := &observer{name: simName(i), ep: w.lan.join(simAddr(i)), left: map[string]discovery.Event{}}
		o.wire = &counted{Transport: o.ep}
		o.prober = &countingProber{health: w.health}
		cfg := discovery.Config{
			Name: "web", Transport: o.wire, Prober: o.prober,
			Self: discovery.Peer{ID: o.name, HealthURI: healthURI(o.name)},
			// Health hosts are names here, as in the lab.
			ForeignHealthHosts: true,
		}
		if n > defaultMaxPeers {
			// The only setting changed, and only when the default cannot
			// hold the group: MaxPeers caps the members tracked.
			cfg.MaxPeers = n
		}
		g, err := discovery.Join(context.Background(), cfg)
		require.NoError(t, err)
		o.g = g
		g.AddListener(func(e discovery.Event) bool {
			if e.Type == discovery.Left {
				o.mu.Lock()
				o.left[e.Member.ID] = e
				o.mu.Unlock()
			}
			return true
		})
		w.obs = append(w.obs, o)
		if i%50 == 49 {
			advance(100 * time.Millisecond) // members arrive over time, as in life
		}
	}
	return w
}

func (w *simWorld) groups() []*discovery.Group {
	gs := make([]*discovery.Group, len(w.obs))
	for i, o := range w.obs {
		gs[i] = o.g
	}
	return gs
}

// close closes the real members, then stops the crowd.
func (w *simWorld) close() {
	for _, o := range w.obs {
		o.g.Close()
	}
	w.stop()
	w.wg.Wait()
}

// countingProber counts the probes a member starts.
type countingProber struct {
	health *fakeHealth
	n      atomic.Uint64
}

func (p *countingProber) Supports(scheme string) bool { return p.health.Supports(scheme) }

func (p *countingProber) Probe(ctx context.Context, target *url.URL) error {
	p.n.Add(1)
	return p.health.Probe(ctx, target)
}

// simName is member i's ID; the crowd and the real members share the
// scheme, so that their announcements are the same size.
func simName(i int) string { return fmt.Sprintf("m%05d", i) }

// simIndex is the index in a name simName made, or -1.
func simIndex(id string) int {
	i, err := strconv.Atoi(strings.TrimPrefix(id, "m"))
	if err != nil || !strings.HasPrefix(id, "m") {
		return -1
	}
	return i
}

// simAddr is member i's address: 198.18.0.0 + i + 1, port 7946, as
// transport/mem numbers them.
func simAddr(i int) netip.AddrPort {
	v := uint32(198<<24|18<<16) + uint32(i) + 1
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 7946)
}

// simAddrIndex is the index of the member at a, or -1.
func simAddrIndex(a netip.AddrPort) int {
	b := a.Addr().Unmap().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	base := uint32(198<<24 | 18<<16)
	if v <= base || v-base > 1<<20 {
		return -1
	}
	return int(v - base - 1)
}

// simLAN is an in-memory LAN for a few real members and one crowd: a
// multicast from a real member reaches the other real members' queues
// (and its own: multicast loopback is on, as with transport/mem) plus
// one call into the crowd, and a unicast to a crowd address reaches the
// crowd. Queues are unbounded and nothing is lost; a member cut off
// (simEndpoint.cut) neither sends to nor hears anyone else.
type simLAN struct {
	mu     sync.Mutex
	eps    []*simEndpoint
	byAddr map[netip.AddrPort]*simEndpoint
	crowd  crowdSink // set before any endpoint sends
}

// crowdSink is a modeled crowd on a simLAN: the legacy engine's (crowd)
// or the frugal engine's (fcrowd).
type crowdSink interface {
	receive(d crowdIn)          // a datagram from a real member; never blocks
	has(a netip.AddrPort) bool  // a is a crowd member's address
	index(a netip.AddrPort) int // the crowd member at a (has(a))
}

func newSimLAN() *simLAN { return &simLAN{byAddr: map[netip.AddrPort]*simEndpoint{}} }

func (l *simLAN) join(a netip.AddrPort) *simEndpoint {
	e := &simEndpoint{lan: l, addr: a, ready: make(chan struct{}, 1), done: make(chan struct{})}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.eps = append(l.eps, e)
	l.byAddr[a] = e
	return e
}

// fromCrowd delivers what the crowd sent in one instant to the real
// members: each datagram multicast (no dst) or sent to that member.
func (l *simLAN) fromCrowd(out []simOut) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var batch []simDatagram
	for _, e := range l.eps {
		if e.cut.Load() {
			continue
		}
		batch = batch[:0]
		for _, o := range out {
			if !o.dst.IsValid() || o.dst == e.addr {
				batch = append(batch, simDatagram{b: o.b, src: o.src})
			}
		}
		e.push(batch...)
	}
}

// simDatagram is one queued datagram; its bytes are never written after
// they are queued, so copies share them.
type simDatagram struct {
	b       []byte
	src     netip.AddrPort
	refused bool // no datagram: src refused one sent to it (ICMP port unreachable)
}

// simOut is a datagram the crowd sends a real member; no dst: multicast.
type simOut struct {
	b        []byte
	src, dst netip.AddrPort
}

// simEndpoint is a real member's Transport on a simLAN.
type simEndpoint struct {
	lan    *simLAN
	addr   netip.AddrPort
	cut    atomic.Bool // partitioned from everyone
	killed atomic.Bool // its process is gone: unicasts to it are refused (with cut)

	mu     sync.Mutex
	queue  []simDatagram
	head   int
	closed bool
	ready  chan struct{} // a token when the queue may hold something
	done   chan struct{} // closed by Close
}

var _ transport.Transport = (*simEndpoint)(nil)

func (e *simEndpoint) push(ds ...simDatagram) {
	if len(ds) == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	if e.head > 1024 && e.head > len(e.queue)/2 {
		n := copy(e.queue, e.queue[e.head:])
		clear(e.queue[n:])
		e.queue, e.head = e.queue[:n], 0
	}
	e.queue = append(e.queue, ds...)
	select {
	case e.ready <- struct{}{}:
	default:
	}
}

func (e *simEndpoint) checkOpen(op string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return fmt.Errorf("sim: %s %s: %w", e.addr, op, transport.ErrClosed)
	}
	return nil
}

// Send multicasts b: to every real member, itself included, and to the
// crowd.
func (e *simEndpoint) Send(b []byte) error {
	if err := e.checkOpen("send"); err != nil {
		return err
	}
	d := simDatagram{b: bytes.Clone(b), src: e.addr}
	e.push(d) // loopback
	if e.cut.Load() {
		return nil
	}
	l := e.lan
	l.mu.Lock()
	for _, to := range l.eps {
		if to != e && !to.cut.Load() {
			to.push(d)
		}
	}
	l.mu.Unlock()
	if l.crowd != nil {
		l.crowd.receive(crowdIn{b: d.b, src: e.addr, to: -1, from: -1})
	}
	return nil
}

// SendTo sends b to one real member or crowd member; to an address no one
// has (a member closed), it goes nowhere, as UDP's would.
func (e *simEndpoint) SendTo(b []byte, dst netip.AddrPort) error {
	if err := e.checkOpen("send to " + dst.String()); err != nil {
		return err
	}
	if e.cut.Load() {
		return nil
	}
	d := simDatagram{b: bytes.Clone(b), src: e.addr}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	l := e.lan
	l.mu.Lock()
	to := l.byAddr[dst]
	l.mu.Unlock()
	switch {
	case to != nil && to.killed.Load():
		e.push(simDatagram{src: dst, refused: true}) // its host answers ICMP port unreachable
	case to != nil:
		if !to.cut.Load() {
			to.push(d)
		}
	case l.crowd != nil && l.crowd.has(dst):
		l.crowd.receive(crowdIn{b: d.b, src: e.addr, to: l.crowd.index(dst), from: -1})
	}
	return nil
}

// UnicastIsUnique reports true: an endpoint's address is its own, so the
// frugal engine pings over it (transport.UniqueUnicast).
func (e *simEndpoint) UnicastIsUnique() bool { return true }

// Receive returns the oldest queued datagram, waiting for one.
func (e *simEndpoint) Receive(buf []byte) (transport.Packet, error) {
	for {
		d, ok, err := e.pop()
		if err != nil {
			return transport.Packet{}, err
		}
		if ok {
			if d.refused {
				return transport.Packet{Src: d.src, IfIndex: 1, Refused: true}, nil
			}
			if len(d.b) > len(buf) {
				return transport.Packet{Src: d.src, IfIndex: 1}, fmt.Errorf("sim: %s receive: %d bytes: %w", e.addr, len(d.b), transport.ErrTruncated)
			}
			return transport.Packet{N: copy(buf, d.b), Src: d.src, IfIndex: 1}, nil
		}
		select {
		case <-e.ready:
		case <-e.done:
		}
	}
}

func (e *simEndpoint) pop() (simDatagram, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return simDatagram{}, false, fmt.Errorf("sim: %s receive: %w", e.addr, transport.ErrClosed)
	}
	if e.head == len(e.queue) {
		return simDatagram{}, false, nil
	}
	d := e.queue[e.head]
	e.queue[e.head] = simDatagram{}
	if e.head++; e.head == len(e.queue) {
		e.queue, e.head = e.queue[:0], 0
	}
	return d, true, nil
}

// Close takes the endpoint off the LAN and unblocks Receive.
func (e *simEndpoint) Close() error {
	l := e.lan
	l.mu.Lock()
	if l.byAddr[e.addr] == e {
		delete(l.byAddr, e.addr)
		l.eps = slices.DeleteFunc(l.eps, func(x *simEndpoint) bool { return x == e })
	}
	l.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		e.closed = true
		e.queue, e.head = nil, 0
		close(e.done)
	}
	return nil
}

// simReceived is a datagram a test read from a bare endpoint.
type simReceived struct {
	msg codec.Message
	src netip.AddrPort
}

// received takes and decodes everything queued at e, for a test that
// uses e as a bare endpoint rather than a Group's transport.
func (e *simEndpoint) received(t *testing.T) []simReceived {
	t.Helper()
	var out []simReceived
	for {
		d, ok, err := e.pop()
		require.NoError(t, err)
		if !ok {
			return out
		}
		if d.refused {
			continue
		}
		var m codec.Message
		require.NoError(t, pipe.Codec{}.Decode(d.b, &m))
		out = append(out, simReceived{m, d.src})
	}
}

// crowd is the modeled members k to n-1 of a simulated group (crowd
// member j is member first+j). One goroutine (run) drives it on the
// bubble's clock; everything it does follows the rules of the Group, as
// the comments on each method say.
type crowd struct {
	cfg    discovery.Config // the defaults: the numbers the crowd follows
	codec  pipe.Codec
	lan    *simLAN
	health *fakeHealth
	first  int
	size   int
	every  time.Duration // a round's tick: ProbeInterval / ProbeFanout
	wake   chan struct{}

	inMu  sync.Mutex
	inbox []crowdIn // from real members

	mu        sync.Mutex
	start     time.Time
	events    crowdEvents
	annAt     []time.Time     // when each member's next announcement is due, exactly
	lastAnn   []time.Time     // when each last announced
	ann       [][]byte        // each member's announcement, encoded
	phase     []time.Duration // each member's round ticks: start + phase + i × every
	refuted   []time.Time     // when each last answered an obituary about itself
	observers map[string]*watched
	helpers   []*watched // the real members a crowd member may ask: not gone, not the victim
	internal  []crowdIn  // between crowd members, in this instant
	out       []simOut   // to real members, in this instant
	seq       uint64

	// The victim: every crowd member's view of it.
	epoch  uint64 // bumped for each victim; events of another are stale
	victim *watched
	views  []view

	stats crowdStats
}

// crowdIn is a datagram for the crowd: to one member (to >= 0) or
// multicast (to < 0); from is the crowd member that sent it, or -1.
type crowdIn struct {
	b        []byte
	src      netip.AddrPort
	to, from int
}

// watched is a real member as the crowd knows it.
type watched struct {
	id        string
	addr      netip.AddrPort
	joined    time.Time
	lastHeard time.Time
	arrivals  []time.Time // its latest announcements (at least keptArrivals)
	gone      bool
}

// keptArrivals is how many announcement arrivals are kept per real
// member: more than PhiAccrual's window of 100 intervals.
const keptArrivals = 128

// view is one crowd member's state about the victim: the fields of
// discovery's peerState that matter to it.
type view struct {
	tracker     score.Tracker
	verdict     score.Verdict
	removed     bool
	removedAt   time.Time
	reason      discovery.Reason
	probing     bool
	probeStart  time.Time
	nextProbe   time.Time
	lastProbeOK time.Time
	failedStart time.Time
	lateProbed  bool
	confirm     *crowdConfirm
	askers      []netip.AddrPort
	slot        int // the victim's slot in this member's current round
}

// crowdConfirm mirrors discovery's confirmation.
type crowdConfirm struct {
	seq       uint64
	since     time.Time
	probeOnly bool
	probe     bool
	asked     []helper
	answered  []bool
}

// helper is a member asked to confirm: a real member, or crowd member j
// (j >= 0).
type helper struct {
	id   string
	addr netip.AddrPort
	j    int
}

// maxAskers mirrors discovery's bound on the members waiting for one
// probe.
const maxAskers = 8

// crowdStats counts what the crowd did.
type crowdStats struct {
	announcements, answers         uint64 // announcements multicast; answers to queries
	probes, lateProbes             uint64 // probes of the victim; of them, late ones
	failedProbes                   uint64 // probes of the victim that fail (it had vanished)
	confirms, refutes              uint64 // confirmations started; refuted
	cfmToReal, evdToReal           uint64 // confirmation requests and evidence sent to real members
	cfmAnswered                    uint64 // confirmation requests answered (from anyone)
	obitsSent, obitsTaken          uint64
	removedFailed, removedExpired  uint64
	undecodable, encodeFailed      uint64
	evidenceFromReal, obitFromReal uint64
}

type crowdEventKind uint8

const (
	evAnnounce   crowdEventKind = iota + 1
	evRound                     // the victim's slot in a member's round
	evProbeDone                 // a probe of the victim ends
	evProbeDue                  // a member's probe chain is due (probeAt)
	evConfirmAsk                // ask again, halfway (taskConfirm)
	evConfirmed                 // a confirmation's deadline (taskConfirmed)
	evSilence                   // the victim may be late (taskSilence)
	evExpire                    // the victim may have expired (taskSilence)
)

// crowdEvent is one timed job of the crowd. All but announcements are
// about the victim of epoch.
type crowdEvent struct {
	at    time.Time
	kind  crowdEventKind
	j     int
	epoch uint64
	seq   uint64
	ok    bool      // evProbeDone: the probe succeeded
	heard time.Time // evSilence, evExpire: the arrival they follow
}

// crowdEvents is a min-heap by time (container/heap).
type crowdEvents []crowdEvent

func (h crowdEvents) Len() int           { return len(h) }
func (h crowdEvents) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h crowdEvents) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *crowdEvents) Push(e any)        { *h = append(*h, e.(crowdEvent)) }
func (h *crowdEvents) Pop() any {
	s := *h
	e := s[len(s)-1]
	*h = s[:len(s)-1]
	return e
}

func (h *crowdEvents) push(e crowdEvent) { minheap.Push(h, e) }
func (h *crowdEvents) pop() crowdEvent   { return minheap.Pop(h).(crowdEvent) }

// newCrowd makes members first to n-1, each announcing from a random
// point of its interval and with a random round phase, as members that
// have been there a while. It must run inside the bubble.
func newCrowd(t *testing.T, lan *simLAN, health *fakeHealth, first, n int) *crowd {
	cfg := discovery.DefaultConfig("web", nil).WithDefaults()
	require.Greater(t, n-1, cfg.ProbeAllUpTo, "the crowd models bounded probing only: N-1 must exceed ProbeAllUpTo")
	size := n - first
	c := &crowd{
		cfg: cfg, lan: lan, health: health, first: first, size: size,
		every:     cfg.ProbeInterval / time.Duration(max(cfg.ProbeFanout, 1)),
		wake:      make(chan struct{}, 1),
		start:     time.Now(),
		annAt:     make([]time.Time, size),
		lastAnn:   make([]time.Time, size),
		ann:       make([][]byte, size),
		phase:     make([]time.Duration, size),
		refuted:   make([]time.Time, size),
		observers: map[string]*watched{},
	}
	for j := range size {
		name := c.name(j)
		h := healthURI(name).String()
		b, err := c.codec.Encode(nil, &codec.Message{Kind: codec.Announce, Group: cfg.Name, ID: name, Health: h, Comms: h})
		require.NoError(t, err)
		c.ann[j] = b
		c.annAt[j] = c.start.Add(rand.N(cfg.AnnounceInterval))
		c.events.push(crowdEvent{at: onGrid(c.annAt[j]), kind: evAnnounce, j: j})
		c.phase[j] = rand.N(c.every)
	}
	return c
}

// onGrid is t rounded up to the millisecond: crowd announcements go out
// on a 1 ms grid, so that thousands a second take a thousand steps of the
// clock, not thousands.
func onGrid(t time.Time) time.Time {
	g := t.Truncate(time.Millisecond)
	if g.Before(t) {
		g = g.Add(time.Millisecond)
	}
	return g
}

func (c *crowd) name(j int) string         { return simName(c.first + j) }
func (c *crowd) addr(j int) netip.AddrPort { return simAddr(c.first + j) }
func (c *crowd) has(a netip.AddrPort) bool {
	i := simAddrIndex(a)
	return i >= c.first && i < c.first+c.size
}
func (c *crowd) index(a netip.AddrPort) int { return simAddrIndex(a) - c.first }
func (c *crowd) push(e crowdEvent)          { c.events.push(e) }
func (c *crowd) current(e crowdEvent) bool  { return c.victim != nil && e.epoch == c.epoch }
func (c *crowd) members() int               { return c.size - 1 + c.realMembers() }
func (c *crowd) encode(m *codec.Message) []byte {
	m.Group = c.cfg.Name
	b, err := c.codec.Encode(nil, m)
	if err != nil {
		c.stats.encodeFailed++
		return nil
	}
	return b
}

// realMembers is the number of real members the crowd knows and has not
// forgotten, the victim included.
func (c *crowd) realMembers() int {
	n := 0
	for _, w := range c.observers {
		if !w.gone {
			n++
		}
	}
	return n
}

// receive queues a datagram from a real member. It never blocks.
func (c *crowd) receive(d crowdIn) {
	c.inMu.Lock()
	c.inbox = append(c.inbox, d)
	c.inMu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// run is the crowd's goroutine.
func (c *crowd) run(ctx context.Context) {
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

// step does everything due at now: the timed events first (as a Group's
// timer fires before datagrams sent in the same instant reach it), then
// datagrams from real members, then those between crowd members, until
// nothing is left; then it hands the real members what the crowd sent.
// It returns when the next event is due.
func (c *crowd) step(now time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		did := false
		for len(c.events) > 0 && !c.events[0].at.After(now) {
			c.handleEvent(c.events.pop(), now)
			did = true
		}
		c.inMu.Lock()
		in := c.inbox
		c.inbox = nil
		c.inMu.Unlock()
		in = append(in, c.internal...)
		c.internal = nil
		for _, d := range in {
			c.handleDatagram(d, now)
			did = true
		}
		if !did {
			break
		}
	}
	if len(c.out) > 0 {
		c.lan.fromCrowd(c.out)
		c.out = nil
	}
	if len(c.events) == 0 {
		return time.Time{}, false
	}
	return c.events[0].at, true
}

func (c *crowd) handleEvent(e crowdEvent, now time.Time) {
	if e.kind == evAnnounce {
		c.announce(e.j, now)
		return
	}
	if !c.current(e) {
		return
	}
	switch e.kind {
	case evSilence:
		if c.victim.lastHeard.Equal(e.heard) {
			c.late(now)
		}
		return
	case evExpire:
		if c.victim.lastHeard.Equal(e.heard) {
			c.expire(now)
		}
		return
	}
	v := &c.views[e.j]
	if v.removed {
		return // its tasks and probes in flight are stale (remove bumps gen)
	}
	switch e.kind {
	case evRound:
		c.round(e.j, now)
	case evProbeDone:
		c.probeDone(e.j, e.ok, now)
	case evProbeDue:
		if e.at.Equal(v.nextProbe) { // runDue's taskProbe
			v.nextProbe = time.Time{}
			c.probe(e.j, now)
		}
	case evConfirmAsk, evConfirmed:
		if v.confirm != nil && v.confirm.seq == e.seq { // runDue's taskConfirm, taskConfirmed
			if e.kind == evConfirmAsk {
				c.ask(e.j, now)
			} else {
				c.confirmed(e.j, now)
			}
		}
	}
}

// announce multicasts member j's announcement and schedules the next one
// (Group.own, announceDelay: AnnounceInterval × (1 ± AnnounceJitter)).
func (c *crowd) announce(j int, now time.Time) {
	c.out = append(c.out, simOut{b: c.ann[j], src: c.addr(j)})
	c.lastAnn[j] = now
	c.stats.announcements++
	d := c.cfg.AnnounceInterval
	if jit := c.cfg.AnnounceJitter; jit > 0 {
		d = time.Duration(float64(d) * (1 + jit*(2*rand.Float64()-1)))
	}
	c.annAt[j] = c.annAt[j].Add(d)
	c.push(crowdEvent{at: onGrid(c.annAt[j]), kind: evAnnounce, j: j})
}

func (c *crowd) handleDatagram(d crowdIn, now time.Time) {
	var m codec.Message
	if err := c.codec.Decode(d.b, &m); err != nil || m.Group != c.cfg.Name {
		c.stats.undecodable++
		return
	}
	switch m.Kind {
	case codec.Announce, codec.Query:
		if d.from >= 0 {
			return // crowd members do not track each other
		}
		c.heard(m.ID, d.src, now)
		if m.Kind == codec.Query && d.to < 0 && m.Health != "" {
			c.answerQuery(d.src)
		}
	case codec.Goodbye:
		if w := c.observers[m.ID]; w != nil && w != c.victim {
			w.gone = true
			c.refreshHelpers()
		}
	case codec.Confirm:
		if d.to >= 0 {
			c.answerConfirm(d.to, &m, d.src, now)
		}
	case codec.Evidence:
		if d.to >= 0 {
			if d.from < 0 {
				c.stats.evidenceFromReal++
			}
			c.takeEvidence(d.to, &m, now)
		}
	case codec.Obituary:
		if d.from < 0 {
			c.stats.obitFromReal++
		}
		for j := range c.size {
			if j != d.from {
				c.takeObituary(j, &m, now)
			}
		}
	}
}

// heard records an announcement or query of a real member, as every crowd
// member hears it (Group.handle, Group.track). The victim's also feed
// every crowd member's tracker and end its late silence (armSilence).
func (c *crowd) heard(id string, src netip.AddrPort, now time.Time) {
	w := c.observers[id]
	if w == nil {
		w = &watched{id: id, addr: src, joined: now}
		c.observers[id] = w
		c.refreshHelpers()
	}
	w.lastHeard = now
	w.arrivals = append(w.arrivals, now)
	if len(w.arrivals) > 2*keptArrivals {
		w.arrivals = append(w.arrivals[:0], w.arrivals[len(w.arrivals)-keptArrivals:]...)
	}
	if w != c.victim {
		return
	}
	for j := range c.views {
		v := &c.views[j]
		if v.removed {
			continue
		}
		v.tracker.Observe(score.Observation{Event: score.Heartbeat, At: now})
		v.lateProbed = false
	}
	c.push(crowdEvent{at: now.Add(c.cfg.LateAfter), kind: evSilence, epoch: c.epoch, heard: now})
}

// answerQuery: every crowd member answers a query with its announcement,
// by unicast (Group.answer).
func (c *crowd) answerQuery(to netip.AddrPort) {
	for j := range c.size {
		c.out = append(c.out, simOut{b: c.ann[j], src: c.addr(j), dst: to})
	}
	c.stats.answers += uint64(c.size)
}

func (c *crowd) refreshHelpers() {
	c.helpers = c.helpers[:0]
	for _, w := range c.observers {
		if !w.gone && w != c.victim {
			c.helpers = append(c.helpers, w)
		}
	}
	slices.SortFunc(c.helpers, func(a, b *watched) int { return strings.Compare(a.id, b.id) })
}

// late runs when the victim has been silent for LateAfter: each crowd
// member that has not probed it for this silence probes it with
// probability ProbeFanout/members (Group.silence under bounded probing).
// Then each waits for its expiry (pushSilence).
func (c *crowd) late(now time.Time) {
	members := float64(c.members())
	for j := range c.views {
		v := &c.views[j]
		if v.removed || v.lateProbed {
			continue
		}
		v.lateProbed = true
		if rand.Float64()*members >= float64(c.cfg.ProbeFanout) {
			continue
		}
		c.stats.lateProbes++
		c.probe(j, now)
	}
	h := c.victim.lastHeard
	c.push(crowdEvent{at: h.Add(c.cfg.ExpireAfter), kind: evExpire, epoch: c.epoch, heard: h})
}

// expire removes the victim silent for ExpireAfter (Group.silence).
func (c *crowd) expire(now time.Time) {
	for j := range c.views {
		if !c.views[j].removed {
			c.remove(j, discovery.Expired, now)
		}
	}
}

// round is the victim's turn in member j's round: probed unless a probe
// is in flight (Group.nextInRound); its slot in the next round is drawn,
// shuffled anew, as nextInRound's rand.Shuffle does.
func (c *crowd) round(j int, now time.Time) {
	v := &c.views[j]
	if !v.probing {
		c.probe(j, now)
	}
	m := c.members()
	next := rand.IntN(m)
	ticks := m - v.slot + next // the rest of this round, then next+1 into the next
	v.slot = next
	c.push(crowdEvent{at: now.Add(time.Duration(ticks) * c.every), kind: evRound, j: j, epoch: c.epoch})
}

// probe: Group.probe: assess first, then start a probe unless one is in
// flight. The probe asks the fake health table, as the real members'
// prober does: up answers at once, silent times out after ProbeTimeout,
// anything else fails at once.
func (c *crowd) probe(j int, now time.Time) {
	if !c.assess(j, now) {
		return
	}
	v := &c.views[j]
	if v.probing {
		return
	}
	v.probing, v.probeStart = true, now
	c.stats.probes++
	mode, _ := c.health.state(healthURI(c.victim.id))
	at := now
	if mode == silent {
		at = now.Add(c.cfg.ProbeTimeout)
	}
	if mode != up {
		c.stats.failedProbes++ // counted when it ends, even if stale, as Stats.ProbesFailed is
	}
	c.push(crowdEvent{at: at, kind: evProbeDone, j: j, epoch: c.epoch, ok: mode == up})
}

// probeDone mirrors Group.handleProbe.
func (c *crowd) probeDone(j int, ok bool, now time.Time) {
	v := &c.views[j]
	v.probing = false
	o := score.Observation{Event: score.ProbeOK, At: now, RTT: now.Sub(v.probeStart)}
	if !ok {
		o.Event = score.ProbeFailed
		v.failedStart = v.probeStart
		v.askers = nil
	} else {
		v.lastProbeOK = now
		c.tellAskers(j, now)
	}
	v.tracker.Observe(o)
	if !c.assess(j, now) {
		return
	}
	if c.chained(v) {
		interval := c.cfg.ProbeInterval
		if v.verdict != score.Healthy {
			interval = c.cfg.SuspectProbeInterval
		}
		next := v.probeStart.Add(interval)
		if next.Before(now) {
			next = now
		}
		c.probeAt(j, next)
	}
}

// chained mirrors Group.chained for a joined member under bounded
// probing.
func (c *crowd) chained(v *view) bool { return v.verdict != score.Healthy || v.confirm != nil }

func (c *crowd) probeAt(j int, at time.Time) {
	c.views[j].nextProbe = at
	c.push(crowdEvent{at: at, kind: evProbeDue, j: j, epoch: c.epoch})
}

// assess mirrors Group.assess. It reports whether j still tracks the
// victim.
func (c *crowd) assess(j int, now time.Time) bool {
	v := &c.views[j]
	a := v.tracker.Assess(now)
	switch {
	case a.Verdict == score.Dead && v.confirm == nil && !c.startConfirm(j, now):
		c.remove(j, discovery.Failed, now)
		return false
	case a.Verdict == score.Dead:
		a.Verdict = score.Suspect // until the members asked have answered
	case v.confirm != nil:
		v.confirm = nil // the policy changed its mind
	}
	v.verdict = a.Verdict
	return true
}

// startConfirm mirrors Group.startConfirm under bounded probing: ask
// Confirmers random healthy members, who probe on request; only the
// deadline settles it.
func (c *crowd) startConfirm(j int, now time.Time) bool {
	if c.cfg.Confirmers < 0 {
		return false
	}
	helpers := c.pickHelpers(j, c.cfg.Confirmers)
	if len(helpers) == 0 {
		return false
	}
	v := &c.views[j]
	c.seq++
	cf := &crowdConfirm{seq: c.seq, since: v.failedStart, probe: true, asked: helpers, answered: make([]bool, len(helpers))}
	if cf.since.IsZero() {
		cf.since = c.victim.lastHeard
	} else {
		cf.probeOnly = c.victim.lastHeard.After(v.failedStart)
	}
	v.confirm = cf
	c.stats.confirms++
	c.ask(j, now)
	c.push(crowdEvent{at: now.Add(c.cfg.ConfirmTimeout / 2), kind: evConfirmAsk, j: j, epoch: c.epoch, seq: cf.seq})
	c.push(crowdEvent{at: now.Add(c.cfg.ConfirmTimeout), kind: evConfirmed, j: j, epoch: c.epoch, seq: cf.seq})
	return true
}

// pickHelpers mirrors Group.pickHelpers: k distinct members at random,
// other than j and the victim, from every healthy member j knows (the
// real members not gone and the other crowd members).
func (c *crowd) pickHelpers(j, k int) []helper {
	total := len(c.helpers) + c.size - 1
	k = min(k, total)
	picked := make([]helper, 0, k)
	for len(picked) < k {
		r := rand.IntN(total)
		var h helper
		if r < len(c.helpers) {
			w := c.helpers[r]
			h = helper{id: w.id, addr: w.addr, j: -1}
		} else {
			i := r - len(c.helpers)
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

// ask mirrors Group.ask: the request goes to every member asked that has
// not answered and is still there.
func (c *crowd) ask(j int, now time.Time) {
	cf := c.views[j].confirm
	b := c.encode(&codec.Message{Kind: codec.Confirm, ID: c.name(j), Target: c.victim.id, Since: now.Sub(cf.since), Probe: cf.probe})
	if b == nil {
		return
	}
	for i, h := range cf.asked {
		if cf.answered[i] || h.j < 0 && c.observers[h.id].gone {
			continue
		}
		c.sendTo(j, b, h.addr, codec.Confirm)
	}
}

// sendTo sends b by unicast from member j to another crowd member or a
// real member.
func (c *crowd) sendTo(j int, b []byte, dst netip.AddrPort, kind codec.Kind) {
	if c.has(dst) {
		c.internal = append(c.internal, crowdIn{b: b, src: c.addr(j), to: simAddrIndex(dst) - c.first, from: j})
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

// confirmed mirrors Group.confirmed under bounded probing: remove, and
// multicast an obituary.
func (c *crowd) confirmed(j int, now time.Time) {
	c.views[j].confirm = nil
	c.remove(j, discovery.Failed, now)
	b := c.encode(&codec.Message{Kind: codec.Obituary, ID: c.name(j), Target: c.victim.id})
	if b == nil {
		return
	}
	c.stats.obitsSent++
	c.out = append(c.out, simOut{b: b, src: c.addr(j)})
	c.internal = append(c.internal, crowdIn{b: b, src: c.addr(j), to: -1, from: j})
}

func (c *crowd) remove(j int, why discovery.Reason, now time.Time) {
	v := &c.views[j]
	v.removed, v.removedAt, v.reason = true, now, why
	v.confirm, v.askers = nil, nil
	if why == discovery.Expired {
		c.stats.removedExpired++
	} else {
		c.stats.removedFailed++
	}
}

// takeEvidence mirrors Group.takeEvidence for member j.
func (c *crowd) takeEvidence(j int, m *codec.Message, now time.Time) {
	if c.victim == nil || m.Target != c.victim.id {
		return // the crowd confirms no one else
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
	alive := m.Probed >= 0 && now.Add(-m.Probed).After(cf.since) ||
		!cf.probeOnly && m.Heard >= 0 && now.Add(-m.Heard).After(cf.since)
	if alive {
		c.stats.refutes++
		v.confirm = nil
		v.tracker.Observe(score.Observation{Event: score.ProbeOK, At: now})
		if c.assess(j, now) && v.nextProbe.IsZero() && !v.probing && c.chained(v) {
			c.probeAt(j, now.Add(c.cfg.SuspectProbeInterval))
		}
		return
	}
	cf.answered[i] = true
	if !cf.probe && !slices.Contains(cf.answered, false) {
		c.confirmed(j, now)
	}
}

// answerConfirm mirrors Group.answerConfirm for member j: what it knows of
// the target, and a probe when asked and what it has is too old. Of real
// members other than the victim it knows their last announcement, and a
// probe of one succeeds at once (so the second answer goes at once).
func (c *crowd) answerConfirm(j int, m *codec.Message, src netip.AddrPort, now time.Time) {
	c.stats.cfmAnswered++
	reply := codec.Message{Kind: codec.Evidence, ID: c.name(j), Target: m.Target, Heard: -1, Probed: -1}
	probe, probedLive := false, false
	switch w := c.observers[m.Target]; {
	case m.Target == c.name(j):
		reply.Heard, reply.Probed = 0, 0
	case w != nil && w == c.victim:
		if v := &c.views[j]; !v.removed {
			reply.Heard = now.Sub(w.lastHeard)
			if !v.lastProbeOK.IsZero() {
				reply.Probed = now.Sub(v.lastProbeOK)
			}
			if m.Probe && (reply.Probed < 0 || reply.Probed >= m.Since) {
				if len(v.askers) < maxAskers && !slices.Contains(v.askers, src) {
					v.askers = append(v.askers, src)
				}
				probe = true
			}
		}
	case w != nil && !w.gone:
		reply.Heard = now.Sub(w.lastHeard)
		probedLive = m.Probe
	default:
		if i := simIndex(m.Target) - c.first; i >= 0 && i < c.size && simName(c.first+i) == m.Target {
			reply.Heard = now.Sub(c.lastAnn[i])
			probedLive = m.Probe
		}
	}
	if b := c.encode(&reply); b != nil {
		c.sendTo(j, b, src, codec.Evidence)
	}
	if probedLive {
		reply.Probed = 0
		if b := c.encode(&reply); b != nil {
			c.sendTo(j, b, src, codec.Evidence)
		}
	}
	if probe {
		c.probe(j, now)
	}
}

// tellAskers mirrors Group.tellAskers.
func (c *crowd) tellAskers(j int, now time.Time) {
	v := &c.views[j]
	if len(v.askers) == 0 {
		return
	}
	b := c.encode(&codec.Message{Kind: codec.Evidence, ID: c.name(j), Target: c.victim.id, Heard: now.Sub(c.victim.lastHeard), Probed: 0})
	if b != nil {
		for _, a := range v.askers {
			c.sendTo(j, b, a, codec.Evidence)
		}
	}
	v.askers = nil
}

// takeObituary mirrors Group.takeObituary for member j. One about j
// itself is answered with an announcement; one about a live member is
// ignored, as a member heard within LateAfter is, which every live member
// is.
func (c *crowd) takeObituary(j int, m *codec.Message, now time.Time) {
	if m.Target == c.name(j) {
		if now.Sub(c.refuted[j]) > c.cfg.AnnounceInterval/4 {
			c.refuted[j] = now
			c.out = append(c.out, simOut{b: c.ann[j], src: c.addr(j)})
		}
		return
	}
	if c.victim == nil || m.Target != c.victim.id {
		return
	}
	v := &c.views[j]
	if v.removed {
		return
	}
	latest := c.victim.lastHeard
	if v.lastProbeOK.After(latest) {
		latest = v.lastProbeOK
	}
	if now.Sub(latest) < c.cfg.LateAfter {
		return
	}
	c.stats.obitsTaken++
	c.remove(j, discovery.Failed, now)
}

// setVictim makes the real member id the one whose detection the crowd
// models. Each crowd member's tracker is built by replaying the member's
// recorded announcements; where the member stands in each crowd member's
// round, and when that one last probed it, are drawn: its slot is uniform
// in every round, and the crowd member probed it when it joined.
func (c *crowd) setVictim(t *testing.T, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.observers[id]
	require.True(t, w != nil && len(w.arrivals) > 0, "the crowd never heard %s", id)
	c.epoch++
	c.victim = w
	c.refreshHelpers()
	now := time.Now()
	m := c.members()
	c.views = make([]view, c.size)
	for j := range c.views {
		v := &c.views[j]
		tr := c.cfg.Policy.Track(w.arrivals[0])
		for _, a := range w.arrivals[1:] {
			tr.Observe(score.Observation{Event: score.Heartbeat, At: a})
		}
		v.tracker = tr
		v.verdict = tr.Assess(now).Verdict

		// The first tick of j's round after now, and where it stands.
		base := c.start.Add(c.phase[j])
		t1 := base.Add((now.Sub(base)/c.every + 1) * c.every)
		p, q := rand.IntN(m), rand.IntN(m) // slots done in this round; the victim's slot
		var ahead, ago int
		if q >= p {
			ahead, ago = q-p, p+m-rand.IntN(m)
			v.slot = q
		} else {
			v.slot = rand.IntN(m)
			ahead, ago = m-p+v.slot, p-q
		}
		v.lastProbeOK = t1.Add(-time.Duration(ago) * c.every)
		if v.lastProbeOK.Before(w.joined) {
			v.lastProbeOK = w.joined
		}
		c.push(crowdEvent{at: t1.Add(time.Duration(ahead) * c.every), kind: evRound, j: j, epoch: c.epoch})
	}
	c.push(crowdEvent{at: w.lastHeard.Add(c.cfg.LateAfter), kind: evSilence, epoch: c.epoch, heard: w.lastHeard})
	select {
	case c.wake <- struct{}{}: // the crowd's timer must see the new events
	default:
	}
}

// forget ends the victim's epoch: it is gone from the group.
func (c *crowd) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w := c.observers[id]; w != nil {
		w.gone = true
	}
	c.victim, c.views = nil, nil
	c.epoch++
	c.refreshHelpers()
}

// removal reports how many crowd members have removed the victim, how
// many of them by expiry, and when the last did.
func (c *crowd) removal() (removed, expired int, last time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.views {
		if v.removed {
			removed++
			if v.reason == discovery.Expired {
				expired++
			}
			if v.removedAt.After(last) {
				last = v.removedAt
			}
		}
	}
	return removed, expired, last
}

// firstRemoval is when the first crowd member removed the victim.
func (c *crowd) firstRemoval() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first time.Time
	for _, v := range c.views {
		if v.removed && (first.IsZero() || v.removedAt.Before(first)) {
			first = v.removedAt
		}
	}
	return first
}

func (c *crowd) snapshot() crowdStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// simResult is what one run measured. Per-member figures are the real
// members'.
type simResult struct {
	spec                   simSpec
	wall, formed           time.Duration
	probes, sent, received summary // per real member per second, over the window
	// Per victim: until every live real member had removed it, until
	// every crowd member had, and until the first member (of either) did.
	detectObs, detectCrowd, detectFirst []time.Duration
	confirms, obits, refutes            float64 // per live real member per victim
	failedProbes                        float64 // of the victims, per live real member per victim
	expired                             int     // victims removed by expiry, by any member
	falseRemovals                       int     // live members removed
	crowd                               crowdStats
	crowdSize                           int
}

// detectAll is, per victim, the time until every member had removed it.
func (r simResult) detectAll() []time.Duration {
	out := slices.Clone(r.detectObs)
	for i, d := range r.detectCrowd {
		out[i] = max(out[i], d)
	}
	return out
}

func (r simResult) label() string {
	if r.spec.k == r.spec.n {
		return fmt.Sprintf("all %d real", r.spec.n)
	}
	return fmt.Sprintf("%d real + crowd of %d", r.spec.k, r.spec.n-r.spec.k)
}

// rows are the figures side by side, one row each.
func (r simResult) rows() [][2]string {
	rows := [][2]string{
		{"run", r.label()},
		{"wall time; group formed after (simulated)", fmt.Sprintf("%v; %v", r.wall.Round(time.Second), r.formed.Round(time.Second))},
		{"probes started per member per s", r.probes.String("%.2f")},
		{"bytes sent per member per s", r.sent.String("%.0f")},
		{"bytes received per member per s", r.received.String("%.0f")},
		{"removed by all: median (max)", medMax(r.detectAll())},
		{"removed by all: mean ± standard error", meanSE(r.detectAll())},
		{"removed by all real members: median (max)", medMax(r.detectObs)},
		{"first removal: median (max)", medMax(r.detectFirst)},
		{"per real member per victim: failed probes, confirmations, obits", fmt.Sprintf("%.3f, %.3f, %.3f", r.failedProbes, r.confirms, r.obits)},
		{"expired, false removals, refutations", fmt.Sprintf("%d, %d, %.3f", r.expired, r.falseRemovals, r.refutes*float64(r.spec.victims))},
	}
	if r.crowdSize > 0 {
		s, per := r.crowd, float64(r.crowdSize*r.spec.victims)
		rows = append(rows,
			[2]string{"removed by all crowd members: median (max)", medMax(r.detectCrowd)},
			[2]string{"per crowd member per victim: failed probes, confirmations, obits", fmt.Sprintf("%.3f, %.3f, %.3f",
				float64(s.failedProbes)/per, float64(s.confirms)/per, float64(s.obitsTaken)/per)},
			[2]string{"crowd per victim: probes of it (late), obits sent", fmt.Sprintf("%.1f (%.1f), %.1f",
				float64(s.probes)/float64(r.spec.victims), float64(s.lateProbes)/float64(r.spec.victims), float64(s.obitsSent)/float64(r.spec.victims))},
			[2]string{"crowd to real: cfm, evd; cfm answered", fmt.Sprintf("%d, %d; %d", s.cfmToReal, s.evdToReal, s.cfmAnswered)},
		)
	}
	return rows
}

func (r simResult) String() string { return table(r.rows()) }

// sideBySide lays two runs' figures out in columns.
func sideBySide(a, b simResult) string {
	ra, rb := a.rows(), b.rows()
	var sb strings.Builder
	for i := range max(len(ra), len(rb)) {
		var k, va, vb string
		if i < len(ra) {
			k, va = ra[i][0], ra[i][1]
		}
		if i < len(rb) {
			k, vb = rb[i][0], rb[i][1]
		}
		fmt.Fprintf(&sb, "%-56s %-26s %s\n", k, va, vb)
	}
	return sb.String()
}

func table(rows [][2]string) string {
	var sb strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&sb, "%-56s %s\n", r[0], r[1])
	}
	return sb.String()
}

// summary is a mean with its range.
type summary struct{ mean, min, max float64 }

func summarize(xs []float64) summary {
	s := summary{min: xs[0], max: xs[0]}
	for _, x := range xs {
		s.mean += x / float64(len(xs))
		s.min, s.max = min(s.min, x), max(s.max, x)
	}
	return s
}

func (s summary) String(f string) string {
	return fmt.Sprintf(f+" ("+f+" to "+f+")", s.mean, s.min, s.max)
}

func medMax(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("%.2f s (%.2f s)", s[len(s)/2].Seconds(), s[len(s)-1].Seconds())
}

// meanSE is the mean and its standard error, in seconds.
func meanSE(ds []time.Duration) string {
	if len(ds) < 2 {
		return "-"
	}
	m := meanSeconds(ds)
	var ss float64
	for _, d := range ds {
		ss += (d.Seconds() - m) * (d.Seconds() - m)
	}
	return fmt.Sprintf("%.2f s ± %.2f s", m, math.Sqrt(ss/float64(len(ds)-1)/float64(len(ds))))
}

func meanSeconds(ds []time.Duration) float64 {
	var sum float64
	for _, d := range ds {
		sum += d.Seconds()
	}
	return sum / float64(len(ds))
}

// envSizes parses a comma-separated list of group sizes; empty when the
// variable is unset.
func envSizes(t *testing.T, name string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(os.Getenv(name), func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		require.NoError(t, err, name)
		out = append(out, n)
	}
	return out
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	require.NoError(t, err, name)
	return n
}
