package discovery

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
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
