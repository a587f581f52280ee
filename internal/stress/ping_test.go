package stress

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/internal/netlab"
)

// TestKilledFoundByRefusalOnSockets is TestKilledFoundByRefusal of
// discovery on real sockets: three members ping each other over the
// multicast transport's unicast sockets; one is killed (its Group closes
// without a goodbye, so its unicast port closes, while its TCP health
// server stays up). The kernel's ICMP port unreachable reaches the others'
// sockets (IP_RECVERR), the pings are refused, and both remove it as
// Failed long before ExpireAfter, the only other way it could go: members
// that answer pings are not probed by TCP.
func TestKilledFoundByRefusalOnSockets(t *testing.T) {
	netlab.Require(t)
	const p = 9515
	ping := func(c *discovery.Config) { c.PingInterval = 200 * time.Millisecond }
	gs := lanGroup(t, 3, p, ping)
	var mu sync.Mutex
	var left []discovery.Event
	for _, g := range gs[1:] {
		g.AddListener(func(e discovery.Event) bool {
			if e.Type == discovery.Left {
				mu.Lock()
				left = append(left, e)
				mu.Unlock()
			}
			return true
		})
	}
	require.NoError(t, gs[0].Close())
	killed := time.Now()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(left) == 2
	}, 8*time.Second, 5*time.Millisecond, "both others remove the killed member")
	took := time.Since(killed)
	var refused uint64
	for _, g := range gs[1:] {
		refused += g.Stats().PingsRefused
	}
	t.Logf("figures: killed member removed by both %v after the kill; %d pings refused", took, refused)
	mu.Lock()
	defer mu.Unlock()
	for _, e := range left {
		assert.Equal(t, "m1", e.Member.ID)
		assert.Equal(t, discovery.Failed, e.Reason)
	}
	assert.NotZero(t, refused, "the kernel's refusals reached the pingers")
}
