package stress

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport/multicast"
)

// TestForgedPages plays the forged state transfer of
// docs/design/frugal.md (section 4): while a newcomer joins, a forger
// sprays it with pages listing fake members, 1,000 a second, each from
// the very address and port of one of the members (a raw socket), under
// that member's ID, with a made-up cookie (an off-path forger never sees
// the offers). The members' tables are two pages long and they serve a
// page a second (StateRate 1), so the newcomer's pulls stay open for
// about 0.8 s (each pull sent again 3 times, then the other offer),
// during which forged pages for the page it waits for reach it. Bound: 0
// fake members at the newcomer, the forged pages counted spoofed.
func TestForgedPages(t *testing.T) {
	netlab.Require(t)
	const p, fakes = 9575, 4
	big := strings.Repeat("x", 500) // two entries a page: each member's table is 2 pages
	slow := func(c *discovery.Config) {
		c.StateRate = 1
		c.Self.Meta = map[string]string{"pad": big}
	}
	gs := joinInTurn(t, 3, p, slow)
	// The offerers: every member may be F or S.
	type offerer struct {
		id   string
		addr netip.AddrPort
	}
	var offerers []offerer
	for _, id := range []string{"m1", "m2", "m3"} {
		from := gs[0]
		if id == "m1" {
			from = gs[1]
		}
		m, ok := from.Member(id)
		require.True(t, ok)
		offerers = append(offerers, offerer{id, m.Addr})
	}

	// The newcomer's socket first, so that the spray is under way before
	// it queries.
	hs := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	require.NoError(t, hs.Start(netip.AddrPortFrom(netlab.LoopbackV4, 0).String()))
	t.Cleanup(func() { hs.Close() })
	tr, err := multicast.New(multicast.Config{Interfaces: []string{netlab.Loopback},
		Group: netip.AddrPortFrom(multicast.DefaultGroupV4, p), RescanInterval: -1})
	require.NoError(t, err)
	dst := netip.AddrPortFrom(netlab.LoopbackV4, tr.LocalAddr().Port())

	// Each forged page lists fake members that would pass as members
	// (their health hosts are their addresses).
	var entries []codec.Entry
	for i := range fakes {
		a := netip.AddrFrom4([4]byte{198, 18, 1, byte(i + 1)})
		u := fmt.Sprintf("tcp://%s:1", a)
		entries = append(entries, codec.Entry{ID: fmt.Sprintf("fake-%d", i), Addr: netip.AddrPortFrom(a, 7000),
			Health: u, Comms: u, Pings: true, Extended: true, Version: 1})
	}
	sp := newSpoofer(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent atomic.Int64
	var sendErr atomic.Value
	wg.Go(func() {
		k := 0
		spray(stop, func() int {
			o := offerers[k%len(offerers)]
			m := codec.Message{Kind: codec.Page, Group: "web", ID: o.id, Page: k / len(offerers) % 2, Pages: 2, Entries: entries}
			k++
			rand.Read(m.Cookie[:])
			b, err := pipe.Codec{}.Encode(nil, &m)
			if err == nil {
				err = sp.send(b, o.addr, dst)
			}
			if err != nil {
				sendErr.Store(err)
				return 0
			}
			sent.Add(1)
			return 1
		})
	})
	defer func() { close(stop); wg.Wait() }()
	require.Eventually(t, func() bool { return sent.Load() > 0 || sendErr.Load() != nil }, 10*time.Second, time.Millisecond)

	newcomer, err := discovery.Join(context.Background(), discovery.Config{Name: "web",
		Self: discovery.Peer{ID: "newcomer", HealthURI: hs.URI()}, Transport: tr})
	require.NoError(t, err)
	t.Cleanup(func() { newcomer.Close() })

	// Done: the newcomer pulled the pages it could, its pulls have long
	// ended (about 0.8 s), it knows the 3 members, and 1,000 forged pages
	// reached it.
	require.Eventually(t, func() bool {
		s := newcomer.Stats()
		return s.PagesReceived > 0 && len(newcomer.Members()) >= 3 && s.Dropped[discovery.DropSpoofed] >= 1500
	}, 20*time.Second, 5*time.Millisecond, "the newcomer joins under the spray (send error: %v; stats %+v)", sendErr.Load(), newcomer.Stats())
	s := newcomer.Stats()
	var fake []string
	for _, m := range newcomer.Members() {
		if strings.HasPrefix(m.ID, "fake-") {
			fake = append(fake, m.ID)
		}
	}
	t.Logf("figures: %d forged pages sent (%d fake members each); newcomer pulled %d pages, knows %d members, %d fake; spoofed %d",
		sent.Load(), fakes, s.PagesReceived, len(newcomer.Members()), len(fake), s.Dropped[discovery.DropSpoofed])
	assert.Empty(t, fake, "fake members at the newcomer")
	assert.Equal(t, []string{"m1", "m2", "m3"}, ids(newcomer.Members()), "the newcomer's members")
}
