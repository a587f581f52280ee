package stress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport/multicast"
)

// TestUnprobedMembers plays issue 12's attack 1 on a plain multicast
// group with default settings: 64 source addresses forge announcements
// whose health URIs use the schemes of services found over mDNS,
// mdns:// (no probe at all) and tcpconnect:// (any open port, here one
// the forger opened on its own address). No forged member may join: no
// default prober serves those schemes outside transport/mdns, so each
// announcement is dropped as a bad URI. A real member started afterwards
// is admitted. Before the fix every forged member joined.
func TestUnprobedMembers(t *testing.T) {
	const (
		port    = 9510
		sources = 64
		perSrc  = 4 // forged IDs per source and scheme
	)
	netlab.Require(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var conns []*net.UDPConn
	var opens []net.Listener
	for i := range sources {
		src := netip.AddrFrom4([4]byte{198, 18, 1, byte(i + 1)})
		netlab.IP("addr", "add", src.String()+"/32", "dev", netlab.Loopback) // may exist already
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		require.NoError(t, err)
		defer c.Close()
		conns = append(conns, c)
		ln, err := net.Listen("tcp4", netip.AddrPortFrom(src, 0).String()) // accepts: tcpconnect would pass
		require.NoError(t, err)
		defer ln.Close()
		opens = append(opens, ln)
	}

	target, hsT := memberOn(t, port, "target")
	defer hsT.Close()
	defer target.Close()
	var mu sync.Mutex
	var forgedJoined []string
	var realJoined bool
	target.AddListener(func(e discovery.Event) bool {
		if e.Type == discovery.Joined {
			mu.Lock()
			defer mu.Unlock()
			if strings.HasPrefix(e.Member.ID, "ghost-") {
				forgedJoined = append(forgedJoined, e.Member.ID+" "+e.Member.HealthURI.String())
			}
			realJoined = realJoined || e.Member.ID == "real"
		}
		return true
	})

	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(multicast.DefaultGroupV4, port))
	base := target.Stats().Received
	sent := 0
	for round := range 3 { // announcements repeat, as a real member's do
		for i, c := range conns {
			src := netip.AddrFrom4([4]byte{198, 18, 1, byte(i + 1)})
			open := opens[i].Addr().(*net.TCPAddr).Port
			for k := range perSrc {
				for _, d := range []string{
					fmt.Sprintf("web|ghost-mdns-%d-%d|mdns://%s:1|tcp://%s:1|ann|", i, k, src, src),
					fmt.Sprintf("web|ghost-tcpc-%d-%d|tcpconnect://%s:%d|tcp://%s:1|ann|", i, k, src, open, src),
				} {
					_, err := c.WriteToUDP([]byte(d), dst)
					require.NoError(t, err)
					sent++
				}
			}
			// Each source's datagrams reach pir before the next source
			// sends: none is lost to a full socket buffer.
			require.Eventually(t, func() bool { return target.Stats().Received-base >= uint64(sent) }, 20*time.Second, time.Millisecond,
				"round %d: received %d of %d", round, target.Stats().Received-base, sent)
		}
	}

	real, hsR := memberOn(t, port, "real")
	defer hsR.Close()
	defer real.Close()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return realJoined
	}, 20*time.Second, 10*time.Millisecond, "the real member is admitted")

	s := target.Stats()
	mu.Lock()
	joined := len(forgedJoined)
	mu.Unlock()
	t.Logf("figures: %d forged announcements from %d sources (%d IDs); forged joined %d; dropped bad_uri %d, rate_limited %d, peer_cap %d; %d members",
		sent, sources, 2*sources*perSrc, joined, s.Dropped[discovery.DropBadURI], s.Dropped[discovery.DropRateLimited],
		s.Dropped[discovery.DropPeerCap], len(target.Members()))
	assert.Zero(t, joined, "forged members joined: %v", forgedJoined)
	assert.Positive(t, s.Dropped[discovery.DropBadURI], "forged announcements dropped as bad URIs")
	for _, m := range target.Members() {
		assert.False(t, strings.HasPrefix(m.ID, "ghost-"), "forged member %s", m.ID)
	}
	assert.Contains(t, ids(target.Members()), "real")
}

// memberOn starts a member with default settings (the default Prober) on
// the multicast group on port.
func memberOn(t *testing.T, port uint16, id string) (*discovery.Group, *healthcheck.TCPServer) {
	t.Helper()
	hs := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	require.NoError(t, hs.Start(netip.AddrPortFrom(netlab.LoopbackV4, 0).String()))
	tr, err := multicast.New(multicast.Config{Interfaces: []string{netlab.Loopback},
		Group: netip.AddrPortFrom(multicast.DefaultGroupV4, port), RescanInterval: -1})
	require.NoError(t, err)
	g, err := discovery.Join(context.Background(), discovery.Config{
		Name: "web", Self: discovery.Peer{ID: id, HealthURI: hs.URI()}, Transport: tr,
	})
	require.NoError(t, err)
	return g, hs
}
