package stress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
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

func TestMain(m *testing.M) { netlab.Main(m) }

const (
	port    = 9500
	sources = 50 // forging addresses, 198.18.1.1-50 on lo
)

// countingProber counts the probes it starts, per second.
type countingProber struct {
	inner  healthcheck.Prober
	start  time.Time
	mu     sync.Mutex
	perSec map[int]int
	total  atomic.Int64
}

func (c *countingProber) Probe(ctx context.Context, u *url.URL) error {
	c.total.Add(1)
	c.mu.Lock()
	c.perSec[int(time.Since(c.start)/time.Second)]++
	c.mu.Unlock()
	return c.inner.Probe(ctx, u)
}

func (c *countingProber) peak() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := 0
	for _, n := range c.perSec {
		m = max(m, n)
	}
	return m
}

func member(t *testing.T, id string, prober healthcheck.Prober) (*discovery.Group, *healthcheck.TCPServer) {
	t.Helper()
	hs := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	require.NoError(t, hs.Start(netip.AddrPortFrom(netlab.LoopbackV4, 0).String()))
	tr, err := multicast.New(multicast.Config{Interfaces: []string{netlab.Loopback},
		Group: netip.AddrPortFrom(multicast.DefaultGroupV4, port), RescanInterval: -1})
	require.NoError(t, err)
	g, err := discovery.Join(context.Background(), discovery.Config{
		Name: "web", Self: discovery.Peer{ID: id, HealthURI: hs.URI()}, Transport: tr, Prober: prober,
	})
	require.NoError(t, err)
	return g, hs
}

func heap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// forge multicasts n announcements with distinct IDs from the given
// sources, pointing probes at a closed port of their own address. It stops early when stop is
// closed. When received is not nil the attacker keeps at most 500
// datagrams ahead of what the target has received, so that the flood is
// as fast as the target can take and no faster: every forged datagram
// reaches pir instead of overflowing the socket buffer (this machine, with
// the race detector, is far slower than a real member).
func forge(n int, stop <-chan struct{}, received func() uint64) (int, error) {
	var conns []*net.UDPConn
	for i := range sources {
		src := netip.AddrFrom4([4]byte{198, 18, 1, byte(i + 1)})
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		if err != nil {
			return 0, err
		}
		defer c.Close()
		conns = append(conns, c)
	}
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(multicast.DefaultGroupV4, port))
	sent := 0
	for i := range n {
		select {
		case <-stop:
			return sent, nil
		default:
		}
		src := i%sources + 1 // each names its own source address, as the default check requires
		d := fmt.Sprintf("web|forged-%08d|tcp://198.18.1.%d:1|tcp://198.18.1.%d:1", i, src, src)
		if _, err := conns[i%sources].WriteToUDP([]byte(d), dst); err == nil {
			sent++
		}
		if received != nil && i%100 == 99 {
			deadline := time.Now().Add(10 * time.Second)
			for received()+500 < uint64(sent) {
				if time.Now().After(deadline) {
					// pir stopped taking datagrams: say so rather than
					// crawl on at 100 datagrams per 10 s (CI once hung
					// here, its owner goroutine stuck).
					return sent, fmt.Errorf("the target received %d of %d forged announcements and nothing more for 10 s", received(), sent)
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	return sent, nil
}

func setupSources(t *testing.T) {
	t.Helper()
	netlab.Require(t)
	for i := range sources {
		netlab.IP("addr", "add", fmt.Sprintf("198.18.1.%d/32", i+1), "dev", netlab.Loopback) // may exist already
	}
}

// floodN is how many forged announcements TestFlood sends.
const floodN = 30000

// TestFlood sends 30,000 forged announcements with distinct IDs from 50
// addresses at a member with default settings: its memory stays bounded,
// its probe rate stays at the cap, and its real peers stay members.
func TestFlood(t *testing.T) {
	setupSources(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	fdsBefore := openFDs(t)

	cp := &countingProber{inner: healthcheck.NewRegistry(), start: time.Now(), perSec: map[int]int{}}
	target, hsT := member(t, "target", cp)
	var others []*discovery.Group
	var servers []*healthcheck.TCPServer
	for _, id := range []string{"real-1", "real-2", "real-3"} {
		g, hs := member(t, id, nil)
		others, servers = append(others, g), append(servers, hs)
	}
	require.Eventually(t, func() bool { return len(target.Members()) == 3 }, 10*time.Second, 10*time.Millisecond)
	var realLeft atomic.Int64 // real peers removed: there must be none
	target.AddListener(func(e discovery.Event) bool {
		if e.Type == discovery.Left {
			realLeft.Add(1)
			t.Logf("target: %v", e)
		}
		return true
	})
	base := heap()

	start := time.Now()
	sent, err := forge(floodN, nil, func() uint64 { return target.Stats().Received })
	require.NoError(t, err)
	elapsed := time.Since(start)
	<-time.After(3 * time.Second) // the probes the flood caused play out
	assert.Zero(t, realLeft.Load(), "the real peers stayed members all along")
	grown := int64(heap()) - int64(base)
	s := target.Stats()
	t.Logf("figures: %d forged announcements in %v; received %d, dropped %v; pending %d; heap grew %d KiB; probes %d, peak %d/s",
		sent, elapsed.Round(time.Millisecond), s.Received, s.Dropped, s.Pending, grown/1024, cp.total.Load(), cp.peak())

	assert.Equal(t, floodN, sent)
	assert.GreaterOrEqual(t, s.Received, uint64(floodN*95/100), "the flood reached pir (the socket buffer may drop a little)")
	assert.Equal(t, []string{"real-1", "real-2", "real-3"}, ids(target.Members()))
	assert.LessOrEqual(t, s.Pending, 1024, "the pending pool's cap (MaxPeers/4)")
	assert.Positive(t, s.Dropped[discovery.DropRateLimited]+s.Dropped[discovery.DropPeerCap], "the limits were hit")
	// The cap holds the probes the target started to 200 a second plus a
	// burst of 64 over its whole life. The count is taken over the whole
	// run, not per second: a probe's goroutine may run a moment after its
	// token was taken, which moves it across a one-second boundary.
	life := time.Since(cp.start).Seconds()
	assert.LessOrEqual(t, float64(cp.total.Load()), 200*life+64, "probes started: the 200/s cap plus its burst, over %.1f s", life)
	assert.Less(t, grown, int64(8<<20), "memory stays bounded")

	// Close under load: everything it opened is closed.
	stop := make(chan struct{})
	forging := make(chan error, 1)
	go func() { _, err := forge(100000, stop, nil); forging <- err }()
	time.Sleep(200 * time.Millisecond) // the flood is under way
	require.NoError(t, target.Close())
	close(stop)
	require.NoError(t, <-forging)
	require.NoError(t, hsT.Close())
	for i, g := range others {
		require.NoError(t, g.Close())
		require.NoError(t, servers[i].Close())
	}
	assert.Equal(t, fdsBefore, openFDs(t), "no socket left open")
}

func ids(ms []discovery.Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}
