package discovery

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pirlan/pir/codec"
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
