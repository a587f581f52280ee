package discovery_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pirlan/pir/discovery"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGoodbyeRemovesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a, _ := l.join("a")
		b, _ := l.join("b")
		synctest.Wait()
		rb := record(b)
		start := time.Now()
		require.NoError(t, a.Leave(context.Background()))
		synctest.Wait()
		left := rb.of(discovery.Left, "a")
		require.Len(t, left, 1)
		assert.Equal(t, discovery.Goodbye, left[0].Reason)
		assert.Zero(t, time.Since(start))
		assert.Empty(t, b.Members())
		assert.NoError(t, a.Leave(context.Background()), "Leave is idempotent")
	})
}

func TestJoinBeforeProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a, _ := l.join("a", func(c *discovery.Config) { c.JoinBeforeProbe = true })
		ra := record(a)
		l.health.set("c:1", refuse)
		l.join("c")
		synctest.Wait()
		assert.Len(t, ra.of(discovery.Joined, "c"), 1, "joined on its announcement")
		advance(10 * time.Second)
		left := ra.of(discovery.Left, "c")
		require.NotEmpty(t, left)
		assert.Equal(t, discovery.Failed, left[0].Reason)
	})
}

// A restart on a new address is an update of the same member. In the
// legacy engine the new health URI is probed by the members; in the frugal
// one, the member checks it itself (HealthInterval).
func TestUpdate(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { update(t, e.set, e.name == "frugal") })
	}
}

func update(t *testing.T, engine func(*discovery.Config), frugal bool) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a, epA := l.join("a", engine)
		b, _ := l.join("b", engine)
		synctest.Wait()
		rb := record(b)
		require.NoError(t, a.Close()) // a crash: no goodbye
		l.health.set("a2:1", up)
		meta := map[string]string{"version": "2"}
		_, epA2 := l.join("a", engine, func(c *discovery.Config) {
			c.Self.HealthURI = healthURI("a2")
			c.Self.Meta = meta
		})
		meta["version"] = "changed after Join" // Join took a copy
		synctest.Wait()
		up := rb.of(discovery.Updated, "a")
		require.Len(t, up, 1)
		assert.Equal(t, "tcp://a:1", up[0].Prev.HealthURI.String())
		assert.Equal(t, "tcp://a2:1", up[0].Member.HealthURI.String())
		assert.Equal(t, map[string]string{"version": "2"}, up[0].Member.Meta)
		assert.Equal(t, epA.Addr(), up[0].Prev.Addr)
		assert.Equal(t, epA2.Addr(), up[0].Member.Addr)
		assert.Empty(t, rb.of(discovery.Left, "a"), "an update, not a departure")
		probes := l.health.count("a2:1")
		if frugal {
			advance(discovery.DefaultConfig("web", nil).WithDefaults().HealthInterval)
			assert.Greater(t, l.health.count("a2:1"), probes, "a checks its new address itself")
			return
		}
		assert.Greater(t, probes, 0, "the new address was probed")
	})
}

func TestMaxPeers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a, _ := l.join("a", func(c *discovery.Config) { c.MaxPeers = 2 })
		for _, n := range []string{"b", "c", "d", "e"} {
			l.join(n)
		}
		advance(3 * time.Second)
		s := a.Stats()
		assert.Len(t, a.Members(), 2)
		assert.Positive(t, s.Dropped[discovery.DropPeerCap])
	})
}
