package stress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
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

// nft runs nft(8) with script on its standard input, inside the test's
// private namespace only: netlab.Require has checked that we are in one,
// so the rules never touch the host's firewall. It skips the test when nft
// is not installed.
func nft(t *testing.T, script string) string {
	t.Helper()
	netlab.Require(t)
	path, err := exec.LookPath("nft")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nft", "/sbin/nft"} {
			if _, e := exec.LookPath(p); e == nil {
				path, err = p, nil
				break
			}
		}
	}
	if err != nil {
		t.Skip("nft(8) is not installed (Debian: apt-get install nftables): it drops the SYNs that make a health check never answer")
	}
	cmd := exec.Command(path, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("nft cannot set rules in this namespace: %v: %s", err, out)
	}
	return string(out)
}

var counterBytes = regexp.MustCompile(`bytes (\d+)`)

// nftBytes reads the byte count of a named nft counter.
func nftBytes(t *testing.T, table, counter string) int {
	t.Helper()
	out := nft(t, fmt.Sprintf("list counter ip %s %s\n", table, counter))
	m := counterBytes.FindStringSubmatch(out)
	require.NotNil(t, m, "nft counter %s: %s", counter, out)
	n, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	return n
}

// joinMember starts a member with its own health server on lo, with the
// default configuration unless mutate changes it.
func joinMember(t *testing.T, id string, mutate func(*discovery.Config)) (*discovery.Group, *healthcheck.TCPServer) {
	t.Helper()
	hs := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	require.NoError(t, hs.Start(netip.AddrPortFrom(netlab.LoopbackV4, 0).String()))
	tr, err := multicast.New(multicast.Config{Interfaces: []string{netlab.Loopback},
		Group: netip.AddrPortFrom(multicast.DefaultGroupV4, port), RescanInterval: -1})
	require.NoError(t, err)
	cfg := discovery.Config{Name: "web", Self: discovery.Peer{ID: id, HealthURI: hs.URI()}, Transport: tr}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := discovery.Join(context.Background(), cfg)
	require.NoError(t, err)
	return g, hs
}

// floodSource is the i-th of the addresses TestNewcomerUnderFlood forges
// from, 198.18.3.1 and up.
func floodSource(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 3, byte(i + 1)}) }

// flood multicasts perTick forged announcements every 10 ms, each with a
// new ID, from the given number of source addresses in turn, until stop
// is closed. Each names its own source as its health host, as a forger
// that passes a health-host-must-be-source check does, on port 9, where
// the test's nft rule drops SYNs. It returns how many it sent.
func flood(stop <-chan struct{}, sources, perTick int) (int, error) {
	conns := make([]*net.UDPConn, sources)
	msgs := make([]string, sources)
	for i := range conns {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(floodSource(i), 0)))
		if err != nil {
			return 0, err
		}
		defer c.Close()
		conns[i] = c
		msgs[i] = fmt.Sprintf("|tcp://%s:9|tcp://%s:9", floodSource(i), floodSource(i))
	}
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(multicast.DefaultGroupV4, port))
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	sent := 0
	for {
		select {
		case <-stop:
			return sent, nil
		case <-tick.C:
		}
		for range perTick {
			i := sent % sources
			if _, err := conns[i].WriteToUDP([]byte("web|flood-"+strconv.Itoa(sent)+msgs[i]), dst); err != nil {
				return sent, err
			}
			sent++
		}
	}
}

// peaks samples the process's goroutines and open fds until stop is
// closed, keeping the highest of each.
type peaks struct {
	goroutines, fds atomic.Int64
	wg              sync.WaitGroup
}

func samplePeaks(t *testing.T, stop <-chan struct{}) *peaks {
	p := &peaks{}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if n := int64(runtime.NumGoroutine()); n > p.goroutines.Load() {
				p.goroutines.Store(n)
			}
			if n := int64(openFDs(t)); n > p.fds.Load() {
				p.fds.Store(n)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// TestNewcomerUnderFlood plays the join lockout (issue 12, attack 8): 300
// forged announcements a second from 64 source addresses whose health
// checks never answer (their SYNs are dropped) keep a member's pending
// pool full. A real member that joins then must still be admitted (Joined
// at the target) within a second of its Join, and the target's goroutines
// and fds stay bounded.
func TestNewcomerUnderFlood(t *testing.T) {
	const sources = 64
	netlab.Require(t)
	for i := range sources {
		netlab.IP("addr", "add", floodSource(i).String()+"/32", "dev", netlab.Loopback) // may exist already
	}
	nft(t, `table ip lockout {
	chain in {
		type filter hook input priority 0; policy accept;
		ip daddr 198.18.3.0/24 tcp dport 9 drop
	}
}
`)
	t.Cleanup(func() { nft(t, "delete table ip lockout\n") })
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	fdsBefore := openFDs(t)
	goroutinesBefore := runtime.NumGoroutine()

	target, hsT := joinMember(t, "target", nil)
	stop := make(chan struct{})
	flooding := make(chan error, 1)
	var sent int
	go func() {
		var err error
		sent, err = flood(stop, sources, 3) // 300 a second
		flooding <- err
	}()
	pk := samplePeaks(t, stop)
	floodStart := time.Now()

	// The flood fills the pending pool (MaxPending, 1024 by default), and
	// the target has probed peers of every forging source at least once.
	pool := discovery.DefaultConfig("web", nil).MaxPending
	require.Eventually(t, func() bool {
		s := target.Stats()
		return s.Pending >= pool && s.ProbesFailed >= sources
	}, 60*time.Second, 20*time.Millisecond, "the flood fills the pending pool")
	t.Logf("pool full after %v", time.Since(floodStart).Round(time.Millisecond))

	joined := make(chan time.Time, 1)
	target.AddListener(func(e discovery.Event) bool {
		if e.Type == discovery.Joined && e.Member.ID == "newcomer" {
			joined <- e.At
			return false
		}
		return true
	})
	start := time.Now()
	newcomer, hsN := joinMember(t, "newcomer", nil)
	var took time.Duration
	select {
	case at := <-joined:
		took = at.Sub(start)
	case <-time.After(60 * time.Second):
		took = time.Since(start)
		t.Errorf("the newcomer was not admitted within %v", took)
	}
	s := target.Stats()
	close(stop)
	require.NoError(t, <-flooding)
	pk.wg.Wait()
	t.Logf("figures: newcomer admitted %v after its Join, %d forged announcements in %v; target: pending %d, dropped %v, probes failed %d; peak goroutines %d (before %d), peak fds %d (before %d)",
		took.Round(time.Millisecond), sent, time.Since(floodStart).Round(time.Millisecond), s.Pending, s.Dropped, s.ProbesFailed,
		pk.goroutines.Load(), goroutinesBefore, pk.fds.Load(), fdsBefore)

	assert.Less(t, took, time.Second, "the newcomer is admitted within a second of its Join")
	assert.Less(t, pk.goroutines.Load(), int64(300), "goroutines stay bounded")
	assert.Less(t, pk.fds.Load()-int64(fdsBefore), int64(200), "fds stay bounded")

	require.NoError(t, newcomer.Close())
	require.NoError(t, hsN.Close())
	require.NoError(t, target.Close())
	require.NoError(t, hsT.Close())
	assert.Equal(t, fdsBefore, openFDs(t), "no socket left open")
}
