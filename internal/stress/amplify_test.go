package stress

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
)

// victim is the third party a forger names as the source of its requests:
// a UDP socket bound to 198.18.1.50 (setupSources adds it to lo), the address every answer to a forged
// request would go to. The forger sends from it, which is what writing its
// address into a forged datagram amounts to.
func victim(t *testing.T) *net.UDPConn {
	t.Helper()
	return udpFrom(t, netip.AddrFrom4([4]byte{198, 18, 1, sources}), 0)
}

// drain reads what v received until it has been quiet for quiet, and
// returns the datagrams and bytes.
func drain(t *testing.T, v *net.UDPConn, quiet time.Duration) (n, bytes int) {
	t.Helper()
	buf := make([]byte, 65536)
	for {
		require.NoError(t, v.SetReadDeadline(time.Now().Add(quiet)))
		k, _, err := v.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return n, bytes
		}
		require.NoError(t, err)
		n++
		bytes += k
	}
}

// settle waits until every member of gs shows the forged datagram's effect:
// it sent something (an answer), or dropped something (a refusal), since
// base.
func settle(t *testing.T, gs []*discovery.Group, sent, drops []uint64) {
	t.Helper()
	require.Eventually(t, func() bool {
		for i, g := range gs {
			if g.Stats().Sent == sent[i] && dropped(g) == drops[i] {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "every member acted on the forged datagram")
}

func counts(gs []*discovery.Group) (sent, drops []uint64) {
	for _, g := range gs {
		sent = append(sent, g.Stats().Sent)
		drops = append(drops, dropped(g))
	}
	return sent, drops
}

// quiet makes members send nothing on their own for the test's length:
// announcements an hour apart, no expiry, so that every datagram a member
// sends is an answer to the forger.
func quiet(c *discovery.Config) {
	c.AnnounceInterval = time.Hour
	c.ExpireAfter = -1
}

// TestQueryAmplification plays attack 5 with a query: one forged multicast
// qry whose source is a victim's address. The group sends the victim at
// most 2x the forged datagram's bytes, summed over all members (answers go
// to the group by multicast, not to the source).
func TestQueryAmplification(t *testing.T) {
	setupSources(t)
	const p, n = 9512, 10
	gs := lanGroup(t, n, p, quiet)
	v := victim(t)
	q, err := pipe.Codec{}.Encode(nil, &codec.Message{Kind: codec.Query, Group: "web", ID: "watch-forged"})
	require.NoError(t, err)
	sent, drops := counts(gs)
	_, err = v.WriteToUDP(q, groupAddr(p))
	require.NoError(t, err)
	settle(t, gs, sent, drops)
	got, bytes := drain(t, v, 300*time.Millisecond)
	t.Logf("figures: %d members; forged qry %d bytes; victim received %d datagrams, %d bytes (%.1fx)",
		n, len(q), got, bytes, float64(bytes)/float64(len(q)))
	assert.LessOrEqual(t, bytes, 2*len(q), "bytes to the victim, at most 2x the forged datagram")
}

// TestConfirmAmplification plays attack 5 with a confirmation request: one
// forged multicast cfm, probe=1, naming a real member as its sender and a
// victim's address as its source. The group sends the victim at most 2x
// its bytes (a cfm sent by multicast, or from an address other than its
// sender's, is not answered).
func TestConfirmAmplification(t *testing.T) {
	setupSources(t)
	const p, n = 9513, 10
	gs := lanGroup(t, n, p, quiet)
	v := victim(t)
	cfm, err := pipe.Codec{}.Encode(nil, &codec.Message{Kind: codec.Confirm, Group: "web", ID: "m1", Target: "m2", Since: time.Hour, Probe: true})
	require.NoError(t, err)
	sent, drops := counts(gs)
	_, err = v.WriteToUDP(cfm, groupAddr(p))
	require.NoError(t, err)
	settle(t, gs, sent, drops)
	got, bytes := drain(t, v, 300*time.Millisecond)
	t.Logf("figures: %d members; forged cfm %d bytes; victim received %d datagrams, %d bytes (%.1fx)",
		n, len(cfm), got, bytes, float64(bytes)/float64(len(cfm)))
	assert.LessOrEqual(t, bytes, 2*len(cfm), "bytes to the victim, at most 2x the forged datagram")
}
