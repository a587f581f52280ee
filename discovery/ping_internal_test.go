package discovery

import (
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A member heard on both families is pinged on its IPv4 address, whichever
// path it was first known by, so that one neighbour entry per member is
// kept (and confirmed by the acks); a member heard on one family only is
// pinged there, and the other path of an earlier incarnation counts for
// nothing.
func TestPingAddrPrefersIPv4(t *testing.T) {
	g := idleGroup(t)
	v4 := netip.MustParseAddrPort("198.18.0.7:5000")
	v6 := netip.MustParseAddrPort("[fd42::7]:5001")

	st := &peerState{joined: true}
	st.member.Addr = v6
	g.peers["p"] = st
	assert.Equal(t, v6, g.pingAddr("p", st), "heard on IPv6 only")
	g.noteAlt("p", st, v4)
	assert.Equal(t, v4, g.pingAddr("p", st), "first known on IPv6, heard on IPv4 too")

	again := &peerState{joined: true}
	again.member.Addr = v6
	g.peers["p"] = again
	assert.Equal(t, v6, g.pingAddr("p", again), "the IPv4 path of its earlier incarnation")

	q := &peerState{joined: true}
	q.member.Addr = v4
	g.peers["q"] = q
	g.noteAlt("q", q, v6)
	assert.Equal(t, v4, g.pingAddr("q", q), "first known on IPv4")
}

// A ping's resends and timeout are tasks; once its ack came they have
// nothing to do, and the owner's timer must not be armed for them: each
// would wake the process for nothing, three times per PingInterval (the
// lab's steady-state CPU). While no ack has come, they stay.
func TestAckedPingArmsNoTimer(t *testing.T) {
	g := idleGroup(t)
	addr := netip.MustParseAddrPort("198.18.0.7:5000")
	st := &peerState{joined: true, pings: true, version: 1}
	st.member.Addr = addr
	g.peers["p"] = st
	now := time.Now()

	require.True(t, g.startPing("p", addr, st.gen, pingRound, now))
	pingTasks := func() (n int) {
		for _, tk := range g.sched {
			if tk.kind == taskPingResend || tk.kind == taskPingTimeout {
				n++
			}
		}
		return n
	}
	g.dropStale()
	require.Equal(t, g.cfg.PingResends+1, pingTasks(), "a ping in flight keeps its resends and timeout")
	at, ok := g.sched.next()
	require.True(t, ok)
	assert.Equal(t, g.at(now.Add(g.cfg.PingTimeout/time.Duration(g.cfg.PingResends+1))), at, "the timer is armed for the first resend")

	f := g.pg.flights["p"]
	g.takeAck(inbound{msg: codec.Message{Kind: codec.Ack, Group: "abc", ID: "p", Nonce: f.nonce, Version: 1}, src: addr, at: now.Add(time.Millisecond)})
	require.Nil(t, g.pg.flights["p"], "the ack ended the ping")
	g.dropStale()
	assert.Zero(t, pingTasks(), "the ended ping's tasks are not what the timer waits for")
}

// Our own messages, looped back, are not forged self-claims; one that
// says another record, other URIs or metadata, or a goodbye while we
// stay, is.
func TestForgedSelfClaimJudged(t *testing.T) {
	g := idleGroup(t)
	me := *g.me()
	me.CommsURI = &url.URL{Scheme: "tcp", Host: "198.18.0.1:2"}
	me.Meta = map[string]string{"zone": "a"}
	g.self.Store(&me)
	own := func(kind codec.Kind) codec.Message {
		b, err := g.encodeSelf(kind, false)
		require.NoError(t, err)
		var m codec.Message
		require.NoError(t, g.cfg.Codec.Decode(b, &m))
		return m
	}
	for _, kind := range []codec.Kind{codec.Announce, codec.Query} {
		m := own(kind)
		assert.False(t, g.forgedSelfClaim(&m), "our own %v", kind)
		for name, change := range map[string]func(*codec.Message){
			"version":  func(m *codec.Message) { m.Version++ },
			"health":   func(m *codec.Message) { m.HealthFails = 3 },
			"pings":    func(m *codec.Message) { m.Pings = false },
			"URI":      func(m *codec.Message) { m.Health = "tcp://198.18.0.1:3" },
			"comms":    func(m *codec.Message) { m.Comms = "tcp://198.18.0.9:2" },
			"metadata": func(m *codec.Message) { m.Meta = map[string]string{"zone": "b"} },
		} {
			f := own(kind)
			change(&f)
			assert.True(t, g.forgedSelfClaim(&f), "%v with another %s", kind, name)
		}
	}
	bye := codec.Message{Kind: codec.Goodbye, Group: "abc", ID: "self"}
	assert.True(t, g.forgedSelfClaim(&bye), "a goodbye while we stay")
	obit := codec.Message{Kind: codec.Obituary, Group: "abc", ID: "self", Target: "x"}
	assert.False(t, g.forgedSelfClaim(&obit), "a claim about another member")
	g.leaving.Store(true)
	assert.False(t, g.forgedSelfClaim(&bye), "our goodbye")

	// The receiver reuses its inbound: a forgery marks only itself.
	g.leaving.Store(false)
	var in inbound
	for _, m := range []codec.Message{bye, own(codec.Announce)} {
		b, err := g.cfg.Codec.Encode(nil, &m)
		require.NoError(t, err)
		g.claims = bucket{}
		g.ingest(b, transport.Packet{N: len(b)}, &in)
		assert.Equal(t, m.Kind == codec.Goodbye, in.forged, "%v", m.Kind)
	}

	// URIs that name every address are announced with each link's.
	any4 := &url.URL{Scheme: "tcp", Host: "0.0.0.0:7"}
	assert.True(t, ourURI("tcp://198.18.0.4:7", any4))
	assert.True(t, ourURI("tcp://[fe80::1%25eth0]:7", &url.URL{Scheme: "tcp", Host: "[::]:7"}))
	assert.False(t, ourURI("tcp://198.18.0.4:8", any4), "another port")
	assert.False(t, ourURI("http://198.18.0.4:7", any4), "another scheme")
	assert.False(t, ourURI("tcp://example.com:7", any4), "a name")
	assert.False(t, ourURI("tcp://198.18.0.4:7", &url.URL{Scheme: "tcp", Host: "198.18.0.5:7"}), "another address")
}

// After our goodbye we announce nothing: not the periodic announcement,
// a health report, nor an Update's report, which would make the members
// that removed us track us again; and we send nothing by unicast (a ping,
// an answer).
func TestNoAnnouncementAfterGoodbye(t *testing.T) {
	g := idleGroup(t)
	me := *g.me()
	me.CommsURI = me.HealthURI // as Join makes it
	g.self.Store(&me)
	g.announceNow()
	require.Equal(t, uint64(1), g.stats.sent.Load(), "an announcement goes before")
	g.leaving.Store(true)
	g.announceNow()
	g.report()
	g.reportTwice(time.Now())
	g.sendTo([]byte("x"), netip.MustParseAddrPort("198.18.0.2:1"))
	assert.Equal(t, uint64(1), g.stats.sent.Load(), "nothing after")
}

// A member's path is judged silent by what can keep it heard: while we
// ping the member at that path's address, its acks (two rounds of ours);
// when we ping it elsewhere (known by IPv6, heard on IPv4 too, pinged at
// IPv4), only its announcements (1.5 T(N)). Judged by our rounds there, a
// watcher's IPv6 path of a member went silent between two announcements,
// and the member's next IPv4 copy moved it, with an Updated event (e2e
// TestAgent, 1 loaded run in 4: "only the killed member changes").
func TestPathSilenceByWhatKeepsItHeard(t *testing.T) {
	g := idleGroup(t)
	for _, id := range []string{"m1", "m2", "m3"} {
		g.peers[id] = &peerState{joined: true, pings: true}
	}
	v4 := netip.MustParseAddrPort("198.18.0.7:5000")
	v6 := netip.MustParseAddrPort("[fd42::7]:5001")
	st := &peerState{joined: true, pings: true}
	st.member.Addr = v4
	g.peers["p"] = st
	g.noteAlt("p", st, v6)
	q := &peerState{joined: true, pings: true}
	q.member.Addr = v6
	g.peers["q"] = q
	g.noteAlt("q", q, v4)
	n := g.groupSize()
	require.Equal(t, 6, n)
	byRounds := 3 * 2 * time.Duration(n-1) * g.cfg.PingInterval
	byAnnouncements := 3 * time.Duration(1.5*float64(g.announceWait(n)))
	require.Less(t, byRounds, byAnnouncements)
	assert.Equal(t, byRounds, g.pathSilence("p", st), "known by IPv4, pinged there")
	require.Equal(t, v4, g.pingAddr("q", q))
	assert.Equal(t, byAnnouncements, g.pathSilence("q", q), "known by IPv6, pinged at IPv4")
	delete(g.alt, "q")
	assert.Equal(t, byRounds, g.pathSilence("q", q), "known by IPv6 alone, pinged there")
}
