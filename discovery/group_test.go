package discovery_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/score"
	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/mem"
)

func TestDiscoveryBothWays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a, _ := l.join("a")
		b, _ := l.join("b")
		c, _ := l.join("c")
		synctest.Wait()
		assert.Equal(t, []string{"b", "c"}, ids(a.Members()))
		assert.Equal(t, []string{"a", "c"}, ids(b.Members()))
		assert.Equal(t, []string{"a", "b"}, ids(c.Members()))
		m, ok := a.Member("b")
		require.True(t, ok)
		assert.Equal(t, "tcp://b:1", m.HealthURI.String())
		assert.Equal(t, "tcp://b:1", m.CommsURI.String(), "comms defaults to the health URI")
		assert.Equal(t, score.Healthy, m.Verdict)
		assert.Equal(t, 1.0, m.Health)
	})
}

// Listeners may call the Group, and a slow one stalls nobody else.
func TestListenerReentrancy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a, _ := l.join("a")
		var seen [][]string
		var inner []discovery.Event
		a.AddListener(func(e discovery.Event) bool {
			seen = append(seen, ids(a.Members()))
			_, ok := a.Member(e.Member.ID)
			assert.Equal(t, e.Type != discovery.Left, ok)
			_ = a.Stats()
			_ = a.Self()
			remove := a.AddListener(func(e2 discovery.Event) bool {
				inner = append(inner, e2)
				return false // unsubscribes itself after one event
			})
			remove()
			return true
		})

		release := make(chan struct{})
		var slow []discovery.Event
		a.AddListener(func(e discovery.Event) bool {
			<-release
			slow = append(slow, e)
			return true
		})
		l.join("b")
		synctest.Wait()
		l.join("c")
		synctest.Wait()
		assert.Equal(t, [][]string{{"b"}, {"b", "c"}}, seen, "the slow listener stalled nothing")
		assert.Equal(t, []string{"b", "c"}, ids(a.Members()))
		close(release)
		synctest.Wait()
		require.Len(t, slow, 2)
		assert.Equal(t, "b", slow[0].Member.ID)
		assert.Equal(t, "c", slow[1].Member.ID)
		assert.LessOrEqual(t, len(inner), 2)
	})
}

func TestListenerReturnFalseUnsubscribes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a, _ := l.join("a")
		n := 0
		a.AddListener(func(discovery.Event) bool { n++; return false })
		l.join("b")
		l.join("c")
		synctest.Wait()
		assert.Equal(t, 1, n)
	})
}

// A listener added late first hears of the members already there.
func TestAddListenerReplaysMembers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a, _ := l.join("a")
		l.join("b")
		l.join("c")
		synctest.Wait()
		r := record(a)
		synctest.Wait()
		var joined []string
		for _, e := range r.all() {
			require.Equal(t, discovery.Joined, e.Type)
			joined = append(joined, e.Member.ID)
		}
		assert.Equal(t, []string{"b", "c"}, joined)
	})
}

// A passive watcher sees everyone at once and is seen by nobody.
func TestPassiveWatcher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a, _ := l.join("a")
		l.join("b")
		advance(5 * time.Second)
		w, _ := l.join("", func(c *discovery.Config) {
			c.Passive = true
			c.Self = discovery.Peer{}
		})
		synctest.Wait()
		assert.Equal(t, []string{"a", "b"}, ids(w.Members()))
		advance(5 * time.Second)
		s := a.Stats()
		assert.Equal(t, 1, s.Members)
		assert.Zero(t, s.Pending, "nobody tracks the watcher")
		require.NoError(t, w.Leave(context.Background()))
	})
}

func TestJoinValidates(t *testing.T) {
	ep := mustEndpoint(t)
	_, err := discovery.Join(context.Background(), discovery.Config{
		Name:      "a|b",
		Transport: ep,
		Self:      discovery.Peer{ID: "has space"},
	})
	require.ErrorIs(t, err, discovery.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "Name")
	assert.Contains(t, err.Error(), "Self.ID")
	assert.Contains(t, err.Error(), "HealthURI")
	_, err = ep.Receive(make([]byte, 10))
	assert.ErrorIs(t, err, transport.ErrClosed, "a failed Join closes the transport")

	err = discovery.Config{}.Validate()
	assert.ErrorIs(t, err, discovery.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "Transport")
}

func TestDefaultConfig(t *testing.T) {
	c := discovery.DefaultConfig("web", mustEndpoint(t))
	assert.Equal(t, time.Second, c.AnnounceInterval)
	assert.Equal(t, 2*time.Second, c.ProbeInterval)
	assert.Equal(t, 2*time.Second, c.ProbeTimeout)
	assert.Equal(t, pipe.Codec{}, c.Codec, "the transport's default")
	assert.NotNil(t, c.Prober)
	assert.Nil(t, c.Policy, "derived at Join")
	assert.NotNil(t, c.WithDefaults().Policy)
}

// Close, with real time and probes in flight, leaves nothing running.
func TestCloseLeavesNothing(t *testing.T) {
	defer goleak.VerifyNone(t)
	lan, err := mem.NewLAN(mem.Config{})
	require.NoError(t, err)
	health := newFakeHealth()
	health.set("a:1", silent) // probes of a hang until Close cancels them
	health.set("b:1", up)
	var groups []*discovery.Group
	for _, n := range []string{"a", "b"} {
		g, err := discovery.Join(context.Background(), discovery.Config{
			Name: "web", Self: discovery.Peer{ID: n, HealthURI: healthURI(n)},
			Transport: lan.Join(), Prober: health, ForeignHealthHosts: true,
		})
		require.NoError(t, err)
		groups = append(groups, g)
	}
	joined := make(chan struct{})
	groups[0].AddListener(func(e discovery.Event) bool { close(joined); return false })
	select {
	case <-joined:
	case <-time.After(10 * time.Second):
		t.Fatal("a never saw b")
	}
	require.Eventually(t, func() bool { return health.count("a:1") > 0 }, 10*time.Second, time.Millisecond)
	for _, g := range groups {
		require.NoError(t, g.Close())
		require.NoError(t, g.Close(), "Close is idempotent")
		assert.NoError(t, g.Leave(context.Background()), "Leave after Close does nothing")
	}
}

func mustEndpoint(t *testing.T) *mem.Endpoint {
	lan, err := mem.NewLAN(mem.Config{})
	require.NoError(t, err)
	return lan.Join()
}

func TestNameAndDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		g, _ := l.join("a")
		assert.Equal(t, "web", g.Name())
		select {
		case <-g.Done():
			t.Fatal("done before Close")
		default:
		}
		require.NoError(t, g.Close())
		select {
		case <-g.Done():
		default:
			t.Fatal("not done after Close")
		}
	})
}
