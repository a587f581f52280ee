package memberlist_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
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

// TestGoodbyeAfterNodeLeft plays the order a loaded machine gives: a node
// leaves memberlist, and the goodbye its member relayed just before is read
// after memberlist's news of the leave. The goodbye must still count (the
// member leaves at once, as Goodbye), not be dropped as coming from an
// unknown relay address. Seen in e2e TestMemberlistTwoSites beside two CPU
// burners: B took A1's goodbye for a failure.
func TestGoodbyeAfterNodeLeft(t *testing.T) {
	leakCheck(t)
	conns := sites(t, 2, memberlist.Config{}) // A, B
	a0 := joinGroup(t, "A0", conns[0], groupConfig(t))
	b1 := joinGroup(t, "B1", conns[1], groupConfig(t))
	b1.waitMembers(t, "A0")
	relay := conns[0].RelayAddr()

	// A0's Conn leaves memberlist without a goodbye (Close); its health
	// server still answers, so B1 keeps A0 until told otherwise.
	require.NoError(t, a0.g.Close())
	require.Eventually(t, func() bool { return conns[1].Stats().Nodes == 0 }, waitFor, 10*time.Millisecond,
		"B learns that A's node left")
	_, ok := b1.g.Member("A0")
	require.True(t, ok, "A0 is still a member at B")

	// The goodbye, from A0's relay address, after the leave.
	late, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(relay))
	require.NoError(t, err)
	t.Cleanup(func() { late.Close() })
	bye, err := pipe.Codec{}.Encode(nil, &codec.Message{Kind: codec.Goodbye, Group: "sites", ID: "A0"})
	require.NoError(t, err)
	_, err = late.WriteToUDPAddrPort(bye, conns[1].RelayAddr())
	require.NoError(t, err)
	e := b1.waitEvent(t, "A0 leaves", func(e discovery.Event) bool { return e.Type == discovery.Left && e.Member.ID == "A0" })
	assert.Equal(t, discovery.Goodbye, e.Reason)
	assert.Zero(t, conns[1].Stats().RelayDropped, "nothing dropped on B's relay socket")
}
