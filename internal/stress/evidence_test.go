package stress

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
)

// TestForgedEvidence plays attack 10: while b confirms the death of a (a
// crashed), a forger sprays evd datagrams that claim to come from c, the
// member b asked, and say a was probed just now. The evd does not come
// from c's address, so b ignores it and removes a as fast as without the
// forgery (a late announcement, a failed probe, one ConfirmTimeout),
// rather than at ExpireAfter.
func TestForgedEvidence(t *testing.T) {
	setupSources(t)
	const p = 9514
	a, hsA := lanMember(t, "a", p)
	b, _ := lanMember(t, "b", p)

	// c is a member b will ask, played by the test: it announces from
	// 198.18.1.7 and its health server answers, but it never answers a
	// confirmation request (as if its answers were lost).
	cAddr := netip.AddrFrom4([4]byte{198, 18, 1, 7})
	hsC := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	require.NoError(t, hsC.Start(netip.AddrPortFrom(cAddr, 0).String()))
	t.Cleanup(func() { hsC.Close() })
	c := udpFrom(t, cAddr, 0)
	hello := fmt.Sprintf("web|c|%s|%s", hsC.URI(), hsC.URI())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() {
		for {
			_, _ = c.WriteToUDP([]byte(hello), groupAddr(p))
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	})
	require.Eventually(t, func() bool { return len(b.Members()) == 2 && len(a.Members()) == 2 }, 10*time.Second, 5*time.Millisecond)
	mb, ok := a.Member("b")
	require.True(t, ok)
	bAddr := mb.Addr // where b receives unicast

	// The forger: evd "from c" about a, probed 0 s ago, every 5 ms.
	forger := udpFrom(t, netip.AddrFrom4([4]byte{198, 18, 1, 8}), 0)
	evd, err := pipe.Codec{}.Encode(nil, &codec.Message{Kind: codec.Evidence, Group: "web", ID: "c", Target: "a", Heard: 0, Probed: 0})
	require.NoError(t, err)
	wg.Go(func() {
		for {
			_, _ = forger.WriteToUDPAddrPort(evd, bAddr)
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})

	// a crashes: no goodbye, its health port closed.
	require.NoError(t, a.Close())
	require.NoError(t, hsA.Close())
	start := time.Now()
	cfg := discovery.DefaultConfig("web", nil).WithDefaults()
	require.Eventually(t, func() bool { _, ok := b.Member("a"); return !ok }, cfg.ExpireAfter+2*time.Second, 10*time.Millisecond, "a removed")
	took := time.Since(start)
	s := b.Stats()
	t.Logf("figures: a removed by b %v after its crash, under forged evd; confirmations %d, refutations %d, dropped %v",
		took.Round(time.Millisecond), s.Confirmations, s.Refutations, s.Dropped)
	assert.Zero(t, s.Refutations, "no forged evd refuted a's death")
	assert.Less(t, took, cfg.ExpireAfter/2, "removed by the failure detector, not kept until expiry")
}
