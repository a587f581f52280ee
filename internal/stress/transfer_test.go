package stress

import (
	"crypto/rand"
	"errors"
	"fmt"
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

// transferring turns on joins by state transfer (they come with pings:
// docs/design/frugal.md, section 2.4).
func transferring(c *discovery.Config) { c.PingInterval = time.Second }

// transferGroup starts n members that transfer, one at a time: each
// joins once the ones before it know each other, so that the table it
// pulls is whole (a member still being admitted when a newcomer pulls is
// learned later, from announcements or, in time, pings).
func transferGroup(t *testing.T, n int, p uint16) []*discovery.Group {
	t.Helper()
	return joinInTurn(t, n, p, quiet, transferring)
}

// joinInTurn starts n members as lanMember does, each once the ones before
// it know each other.
func joinInTurn(t *testing.T, n int, p uint16, mutate ...func(*discovery.Config)) []*discovery.Group {
	t.Helper()
	var gs []*discovery.Group
	for i := range n {
		g, _ := lanMember(t, fmt.Sprintf("m%d", i+1), p, mutate...)
		gs = append(gs, g)
		require.Eventually(t, func() bool {
			for _, g := range gs {
				if len(g.Members()) != len(gs)-1 {
					return false
				}
			}
			return true
		}, 10*time.Second, 5*time.Millisecond, "the group forms")
	}
	return gs
}

// offersActed is how many offers the members of gs sent or held back as
// longer than their query.
func offersActed(gs []*discovery.Group) uint64 {
	var n uint64
	for _, g := range gs {
		s := g.Stats()
		n += s.OffersSent + s.OffersTooLong
	}
	return n
}

// TestTransferQueryAmplification plays attack 5 with a query that says it
// pings (p=1), whose source is a victim's address, against a group that
// joins by state transfer. Only F and S answer it, each with an offer no
// longer than the query: the victim receives at most 2x the forged
// datagram's bytes. Two forms: a query as short as can be (a watcher's,
// unpadded), which gets no offer at all, and a member's, which gets two.
func TestTransferQueryAmplification(t *testing.T) {
	setupSources(t)
	const p, n = 9531, 10
	gs := transferGroup(t, n, p)
	v := victim(t)
	for _, tc := range []struct {
		name string
		qry  codec.Message
	}{
		{"short", codec.Message{Kind: codec.Query, Group: "web", ID: "w", Pings: true}},
		{"member", codec.Message{Kind: codec.Query, Group: "web", ID: "forged-newcomer",
			Health: "tcp://198.18.1.50:1", Comms: "tcp://198.18.1.50:1", Pings: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := pipe.Codec{}.Encode(nil, &tc.qry)
			require.NoError(t, err)
			before := offersActed(gs)
			_, err = v.WriteToUDP(q, groupAddr(p))
			require.NoError(t, err)
			require.Eventually(t, func() bool { return offersActed(gs) >= before+2 }, 10*time.Second, 5*time.Millisecond,
				"F and S acted on the forged query")
			got, bytes := drain(t, v, 300*time.Millisecond)
			t.Logf("figures: %d members; forged qry %d bytes; victim received %d datagrams, %d bytes (%.1fx)",
				n, len(q), got, bytes, float64(bytes)/float64(len(q)))
			assert.LessOrEqual(t, bytes, 2*len(q), "bytes to the victim, at most 2x the forged datagram")
			assert.LessOrEqual(t, got, 2, "datagrams to the victim: F's and S's offers at most")
		})
	}
}

// TestForgedPull plays a forger who aims a member's table at a victim: it
// sends pulls of a state transfer from the victim's address, by unicast to
// a member, with cookies it made up (an off-path forger never sees the
// offers). The member sends the victim nothing, and counts each pull
// spoofed.
func TestForgedPull(t *testing.T) {
	setupSources(t)
	const p, n, pulls = 9532, 3, 100
	gs := transferGroup(t, n, p)
	v := victim(t)
	target, ok := gs[1].Member("m1")
	require.True(t, ok)
	// acted is how many pulls the target refused or answered.
	acted := func() uint64 {
		s := gs[0].Stats()
		return s.Dropped[discovery.DropSpoofed] + s.Dropped[discovery.DropAnswerLimited] + s.PagesSent
	}
	before, spoofed := acted(), gs[0].Stats().Dropped[discovery.DropSpoofed]
	for range pulls {
		m := codec.Message{Kind: codec.Pull, Group: "web", ID: "forged", Page: 0}
		rand.Read(m.Cookie[:])
		b, err := pipe.Codec{}.Encode(nil, &m)
		require.NoError(t, err)
		_, err = v.WriteToUDPAddrPort(b, target.Addr)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return acted()-before == pulls }, 10*time.Second, 5*time.Millisecond,
		"the target acted on every forged pull")
	got, bytes := drain(t, v, 300*time.Millisecond)
	t.Logf("figures: %d forged pulls to %s; victim received %d datagrams, %d bytes",
		pulls, target.Addr, got, bytes)
	assert.Zero(t, bytes, "no page to the victim")
	assert.Equal(t, uint64(pulls), gs[0].Stats().Dropped[discovery.DropSpoofed]-spoofed, "every forged pull counted spoofed")
}

// pagesSent is how many pages the members of gs sent.
func pagesSent(gs []*discovery.Group) (n uint64) {
	for _, g := range gs {
		n += g.Stats().PagesSent
	}
	return n
}

// spoofedAt is how many datagrams the members of gs counted spoofed.
func spoofedAt(gs []*discovery.Group) (n uint64) {
	for _, g := range gs {
		n += g.Stats().Dropped[discovery.DropSpoofed]
	}
	return n
}

// TestStateTransferAmplification plays the state-transfer amplification
// of docs/design/frugal.md (section 4) whole: a forged pinging `qry` from
// a victim's address (a member's form, which F and S answer with an
// offer each, to the victim), then 1,000 forged pulls from the victim's
// address, under the forged querier's ID, spread over all the members by
// unicast, with made-up cookies (the offers went to the victim, not to the
// forger). Bound: the bytes reaching the victim at most 2x the bytes the
// forger sent, and not one page among them.
func TestStateTransferAmplification(t *testing.T) {
	setupSources(t)
	const p, n, pulls = 9533, 3, 1000
	gs := transferGroup(t, n, p)
	v := victim(t)
	var addrs []netip.AddrPort
	for i, g := range gs {
		from := gs[(i+1)%n]
		m, ok := from.Member(g.Self().ID)
		require.True(t, ok)
		addrs = append(addrs, m.Addr)
	}
	// acted is how many pulls the members refused or answered.
	acted := func() (k uint64) {
		for _, g := range gs {
			s := g.Stats()
			k += s.Dropped[discovery.DropSpoofed] + s.Dropped[discovery.DropAnswerLimited] + s.PagesSent
		}
		return k
	}

	// What reaches the victim, by kind, read as it comes (its socket's
	// buffer would overflow otherwise), until 300 ms after the last
	// forgery without a datagram.
	got, bytes, kinds := 0, 0, map[codec.Kind]int{}
	forged, read := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(read)
		buf := make([]byte, 65536)
		for {
			if err := v.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
				return
			}
			k, _, err := v.ReadFromUDPAddrPort(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				select {
				case <-forged:
					return
				default:
					continue
				}
			}
			if err != nil {
				return
			}
			got, bytes = got+1, bytes+k
			var m codec.Message
			if (pipe.Codec{}).Decode(buf[:k], &m) == nil {
				kinds[m.Kind]++
			}
		}
	}()
	defer func() {
		select {
		case <-forged:
		default:
			close(forged) // a require failed: let the reader end
		}
		<-read
	}()

	qry := codec.Message{Kind: codec.Query, Group: "web", ID: "forged-newcomer",
		Health: "tcp://198.18.1.50:1", Comms: "tcp://198.18.1.50:1", Pings: true}
	q, err := pipe.Codec{}.Encode(nil, &qry)
	require.NoError(t, err)
	offers := offersActed(gs)
	_, err = v.WriteToUDP(q, groupAddr(p))
	require.NoError(t, err)
	sent := len(q)
	require.Eventually(t, func() bool { return offersActed(gs) >= offers+2 }, 10*time.Second, 5*time.Millisecond,
		"F and S acted on the forged query")

	before, pagesBefore, spoofedBefore := acted(), pagesSent(gs), spoofedAt(gs)
	for i := range pulls {
		m := codec.Message{Kind: codec.Pull, Group: "web", ID: "forged-newcomer", Page: i % 2}
		rand.Read(m.Cookie[:])
		b, err := pipe.Codec{}.Encode(nil, &m)
		require.NoError(t, err)
		_, err = v.WriteToUDPAddrPort(b, addrs[i%n])
		require.NoError(t, err)
		sent += len(b)
		if (i+1)%30 == 0 { // a batch at a time, so that no socket's buffer overflows
			require.Eventually(t, func() bool { return acted()-before >= uint64(i+1) },
				10*time.Second, time.Millisecond, "the members read the batch")
		}
	}
	require.Eventually(t, func() bool { return acted()-before >= pulls }, 10*time.Second, 5*time.Millisecond,
		"the members acted on every forged pull")

	close(forged)
	<-read
	spoofed, pages := spoofedAt(gs)-spoofedBefore, pagesSent(gs)-pagesBefore
	t.Logf("figures: %d members; forged qry %d bytes and %d pulls, %d bytes in all; victim received %d datagrams (%d offers, %d pages), %d bytes (%.3fx); members sent %d pages, counted %d pulls spoofed",
		n, len(q), pulls, sent, got, kinds[codec.Offer], kinds[codec.Page], bytes, float64(bytes)/float64(sent), pages, spoofed)
	assert.LessOrEqual(t, bytes, 2*sent, "bytes to the victim, at most 2x those sent")
	assert.Zero(t, kinds[codec.Page], "pages to the victim")
	assert.LessOrEqual(t, got, 2, "datagrams to the victim: F's and S's offers at most")
}
