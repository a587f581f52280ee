package memberlist_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/plugins/memberlist"
)

// TestRelayFromNonNode plays the relay attack: a host that is not a
// memberlist node sends five pir announcements to a member's relay
// socket, each naming a health URI that answers. None
// of them reaches the Group: they are dropped and counted, while the real
// member of the other site, relayed by a node memberlist knows, joins.
// On the code before the check, all five forged members joined.
func TestRelayFromNonNode(t *testing.T) {
	leakCheck(t)
	conns := sites(t, 2, memberlist.Config{}) // A, B
	joinGroup(t, "A0", conns[0], groupConfig(t))
	b1 := joinGroup(t, "B1", conns[1], groupConfig(t))

	forger, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(loopback))
	require.NoError(t, err)
	t.Cleanup(func() { forger.Close() })
	hs := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	require.NoError(t, hs.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = hs.Close() })
	health := hs.URI().String() // answers every probe: only the relay check stops them
	for i := range 5 {
		d := "sites|fake-" + string(rune('0'+i)) + "|" + health + "|" + health
		_, err := forger.WriteToUDPAddrPort([]byte(d), conns[1].RelayAddr())
		require.NoError(t, err)
	}

	b1.waitMembers(t, "A0")
	require.Eventually(t, func() bool { return conns[1].Stats().RelayDropped == 5 }, waitFor, 10*time.Millisecond,
		"the five forged datagrams dropped: %+v", conns[1].Stats())
	// Dropped on the relay socket, they can never join; none did before.
	for len(b1.events) > 0 {
		e := <-b1.events
		assert.False(t, strings.HasPrefix(e.Member.ID, "fake-"), "forged member: %v", e)
	}
	for _, m := range b1.g.Members() {
		assert.False(t, strings.HasPrefix(m.ID, "fake-"), "forged member %s joined", m.ID)
	}
	assert.Positive(t, conns[1].Stats().RelayReceived, "A0's relayed datagrams still arrive")
	x, ok := b1.g.Member("A0")
	require.True(t, ok)
	assert.Equal(t, conns[0].RelayAddr(), x.Addr, "A0 heard through its relay")
}
