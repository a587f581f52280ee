package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/score"
	"github.com/pirlan/pir/transport/multicast"
)

func TestMain(m *testing.M) { netlab.Main(m) }

// newAgent returns an agent closed when the test ends.
func newAgent(t testing.TB, cfg Config) *Agent {
	t.Helper()
	a, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close()) })
	return a
}

// fake is a member for the test hook: comms URI tcp://ip:port, source
// address ip:9999.
func fake(id, ip string, port int, v score.Verdict, meta map[string]string) discovery.Member {
	addr := netip.MustParseAddr(ip)
	u := &url.URL{Scheme: "tcp", Host: netip.AddrPortFrom(addr, uint16(port)).String()}
	now := time.Date(2026, 12, 4, 14, 0, 0, 123e6, time.UTC)
	return discovery.Member{
		Peer:   discovery.Peer{ID: id, HealthURI: u, CommsURI: u, Meta: meta},
		Addr:   netip.AddrPortFrom(addr, 9999),
		Health: map[score.Verdict]float64{score.Healthy: 1, score.Suspect: 0.5}[v], Verdict: v,
		Joined: now, LastSeen: now.Add(time.Second),
	}
}

// feed applies events to the view named group, creating it first.
func feed(t testing.TB, a *Agent, group string, ms ...discovery.Member) *view {
	t.Helper()
	v := a.group(group)
	if v == nil {
		var err error
		v, err = a.newView(group)
		require.NoError(t, err)
	}
	for _, m := range ms {
		require.True(t, a.apply(v, discovery.Event{Type: discovery.Joined, Member: m, At: m.Joined}))
	}
	return v
}

// bigGroup is n healthy members m000.. with addresses 198.18.1.x, ports
// 8000+i.
func bigGroup(n int) []discovery.Member {
	ms := make([]discovery.Member, n)
	for i := range n {
		ms[i] = fake(fmt.Sprintf("m%03d", i), fmt.Sprintf("198.18.%d.%d", 1+i/250, 1+i%250), 8000+i, score.Healthy, nil)
	}
	return ms
}

// dnsServers runs the agent's handler on real UDP and TCP sockets on
// 127.0.0.1 and returns their addresses.
func dnsServers(t *testing.T, a *Agent) (udp, tcp string) {
	t.Helper()
	netlab.Require(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	for _, s := range []*dns.Server{
		{PacketConn: pc, Handler: a.DNS(), MsgAcceptFunc: AcceptQueries},
		{Listener: ln, Handler: a.DNS(), MsgAcceptFunc: AcceptQueries},
	} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		done := make(chan error, 1)
		go func() { done <- s.ActivateAndServe() }()
		<-started
		t.Cleanup(func() {
			require.NoError(t, s.Shutdown())
			<-done
		})
	}
	return pc.LocalAddr().String(), ln.Addr().String()
}

// lanMember starts a member with default settings on lo, in group port p,
// with a real TCP health server on lo's address, closed when the test
// ends (as internal/stress does).
func lanMember(t *testing.T, id string, p uint16, meta map[string]string) (*discovery.Group, *healthcheck.TCPServer) {
	t.Helper()
	hs := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	require.NoError(t, hs.Start(netip.AddrPortFrom(netlab.LoopbackV4, 0).String()))
	tr, err := multicast.New(multicast.Config{Interfaces: []string{netlab.Loopback},
		Group: netip.AddrPortFrom(multicast.DefaultGroupV4, p), RescanInterval: -1})
	require.NoError(t, err)
	cfg := discovery.Config{Name: "web", Self: discovery.Peer{ID: id, HealthURI: hs.URI(), Meta: meta}, Transport: tr}
	g, err := discovery.Join(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		g.Close()
		hs.Close()
	})
	return g, hs
}
