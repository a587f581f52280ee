package discovery_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/codec"
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

// A new member learns the existing ones from their answers to its query, in
// one round trip, without waiting for an announcement interval.
func TestQueryOnJoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a, _ := l.join("a")
		b, _ := l.join("b")
		advance(10 * time.Second) // long past the start; both announce steadily
		ra := record(a)
		start := time.Now()
		c, _ := l.join("c")
		synctest.Wait()
		assert.Zero(t, time.Since(start), "the fake clock has not moved")
		assert.Equal(t, []string{"a", "b"}, ids(c.Members()), "c knows everyone at once")
		assert.Len(t, ra.of(discovery.Joined, "c"), 1, "and everyone knows c")
		assert.Equal(t, []string{"a", "c"}, ids(b.Members()))
	})
}

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

// A member that leaves and comes back under the same ID while a probe of
// its earlier life is still running is judged by its new probes only: the
// old probe's failure, when it times out, is not taken for the new
// member's.
func TestRejoinIgnoresProbeOfEarlierLife(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		l.health.set("b:1", silent) // b's first probe hangs until its timeout
		a, _ := l.join("a")
		ra := record(a)
		b, _ := l.join("b")
		advance(100 * time.Millisecond)
		require.Equal(t, 1, l.health.count("b:1"), "a's probe of b is running")
		require.NoError(t, b.Leave(context.Background()))
		synctest.Wait()

		l.health.set("b:1", up)
		l.join("b")
		synctest.Wait()
		require.Len(t, ra.of(discovery.Joined, "b"), 1, "b, back, is probed anew and joins")
		advance(3 * time.Second) // the first probe timed out at 2 s
		assert.Empty(t, ra.of(discovery.HealthChanged, "b"))
		m, ok := a.Member("b")
		require.True(t, ok)
		assert.Equal(t, score.Healthy, m.Verdict)
	})
}

// With the Threshold policy a member is removed after exactly three failed
// probes, the original pir's threshold, and health changes on the way.
func TestRemovedAtThreshold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		l.join("a")
		b, _ := l.join("b", thresholdPolicy)
		synctest.Wait()
		rb := record(b)
		l.health.set("a:1", refuse)
		before := l.health.count("a:1")
		for range 60 {
			advance(100 * time.Millisecond)
			if _, ok := b.Member("a"); !ok {
				break
			}
			failed := l.health.count("a:1") - before
			require.Less(t, failed, 3, "still a member after %d failed probes", failed)
		}
		assert.Equal(t, 3, l.health.count("a:1")-before, "removed on the third failure")
		left := rb.of(discovery.Left, "a")
		require.Len(t, left, 1)
		assert.Equal(t, discovery.Failed, left[0].Reason)
		var healths []float64
		for _, e := range rb.of(discovery.HealthChanged, "a") {
			healths = append(healths, e.Member.Health)
		}
		assert.InDeltaSlice(t, []float64{2.0 / 3, 1.0 / 3}, healths, 1e-9)
	})
}

// A probe that never answers fails at ProbeTimeout, and counts like a
// refusal.
func TestSilentMemberTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		l.join("a")
		b, _ := l.join("b")
		synctest.Wait()
		rb := record(b)
		l.health.set("a:1", silent)
		start := time.Now()
		for range 200 {
			advance(100 * time.Millisecond)
			if len(rb.of(discovery.Left, "a")) > 0 {
				break
			}
		}
		left := rb.of(discovery.Left, "a")
		require.Len(t, left, 1)
		assert.Equal(t, discovery.Failed, left[0].Reason)
		// Three probes of 2 s timeout each, back to back (a probe as long
		// as the interval delays the next by nothing), after up to one
		// interval's wait for the first.
		assert.GreaterOrEqual(t, time.Since(start), 6*time.Second)
		assert.LessOrEqual(t, time.Since(start), 8*time.Second+100*time.Millisecond)
	})
}

// A peer that never answers its probe is never reported: no joined/left
// flapping.
func TestUnreachablePeerNeverFlaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a, _ := l.join("a")
		ra := record(a)
		l.health.set("c:1", refuse)
		l.join("c")
		advance(30 * time.Second)
		assert.Empty(t, ra.of(discovery.Joined, "c"))
		assert.Empty(t, ra.of(discovery.Left, "c"))
		assert.Greater(t, l.health.count("c:1"), 3, "c was probed again and again")
		assert.Empty(t, a.Members())
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

// A member that goes quiet expires even though its probe still answers.
func TestExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		_, epA := l.join("a")
		b, epB := l.join("b")
		synctest.Wait()
		rb := record(b)
		l.lan.Partition([]*mem.Endpoint{epA}, []*mem.Endpoint{epB})
		advance(8 * time.Second)
		_, ok := b.Member("a")
		assert.True(t, ok, "still there 8 s after the last announcement")
		advance(4 * time.Second)
		left := rb.of(discovery.Left, "a")
		require.Len(t, left, 1)
		assert.Equal(t, discovery.Expired, left[0].Reason)
		assert.Greater(t, l.health.count("a:1"), 3, "its probe answered all along")
	})
}

func TestExpiryDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		_, epA := l.join("a")
		// Threshold: the default policy judges silence by itself.
		b, epB := l.join("b", thresholdPolicy, func(c *discovery.Config) { c.ExpireAfter = -1 })
		synctest.Wait()
		l.lan.Partition([]*mem.Endpoint{epA}, []*mem.Endpoint{epB})
		advance(60 * time.Second)
		_, ok := b.Member("a")
		assert.True(t, ok)
	})
}

// A restart on a new address is an update of the same member.
func TestUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a, epA := l.join("a")
		b, _ := l.join("b")
		synctest.Wait()
		rb := record(b)
		require.NoError(t, a.Close()) // a crash: no goodbye
		l.health.set("a2:1", up)
		meta := map[string]string{"version": "2"}
		_, epA2 := l.join("a", func(c *discovery.Config) {
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
		assert.Greater(t, l.health.count("a2:1"), 0, "the new address was probed")
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

func TestOriginalPeerInterop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		old := l.lan.Join() // speaks raw bytes, as an original pir peer
		t.Cleanup(func() { old.Close() })
		got := make(chan string, 16)
		go func() {
			buf := make([]byte, 2048)
			for {
				p, err := old.Receive(buf)
				if err != nil {
					close(got)
					return
				}
				got <- string(buf[:p.N])
			}
		}()
		b, _ := l.join("b", func(c *discovery.Config) { c.AnnounceJitter = -1 })
		advance(time.Second)
		assert.Equal(t, "web|b|tcp://b:1|tcp://b:1|qry|", <-got, "the query on join is an extension")
		assert.Equal(t, "web|b|tcp://b:1|tcp://b:1", <-got, "announcements are the original's bytes")

		l.health.set("198.18.0.2:37821", up)
		require.NoError(t, old.Send([]byte("web|4972084b-10a3-4d9d-8523-7e25b7e50141|tcp://198.18.0.2:37821|tcp://10.1.1.1:80")))
		synctest.Wait()
		m, ok := b.Member("4972084b-10a3-4d9d-8523-7e25b7e50141")
		require.True(t, ok)
		assert.Equal(t, "tcp://10.1.1.1:80", m.CommsURI.String())
		assert.Equal(t, old.Addr(), m.Addr)
		require.NoError(t, old.Close())
		for range got {
		}
	})
}

func TestBadInputDroppedAndCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		b, _ := l.join("b")
		bad := l.lan.Join()
		t.Cleanup(func() { bad.Close() })
		for _, d := range []string{
			"abc|x|%zz|y", // crashes the original pir
			"web|x|%zz|y",
			"\xff\xfe",
			"",
			"web|x|tcp://a:1",
			"web|x|gopher://a:1|tcp://a:1",    // no prober for gopher
			"web|x|tcp://[::1|tcp://a:1",      // does not parse
			"other|x|tcp://x:1|tcp://x:1",     // another group
			"web|b|tcp://evil:1|tcp://evil:1", // our own ID
		} {
			require.NoError(t, bad.Send([]byte(d)))
		}
		synctest.Wait()
		s := b.Stats()
		assert.Equal(t, uint64(5), s.Dropped[discovery.DropMalformed])
		assert.Equal(t, uint64(2), s.Dropped[discovery.DropBadURI])
		assert.Equal(t, uint64(1), s.Dropped[discovery.DropForeignGroup])
		assert.GreaterOrEqual(t, s.Dropped[discovery.DropSelf], uint64(2), "the forged one and our own loopback")
		assert.Empty(t, b.Members())
		assert.Zero(t, s.Pending)
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

// No more than MaxProbes/2 probes of pending peers run at once (the rest
// are kept for members), and the ones that wait for a slot all run in the
// end.
func TestMaxProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		own := newFakeHealth() // a's probes only
		names := []string{"b", "c", "d", "e", "f", "g", "h"}
		for _, n := range names {
			own.set(n+":1", silent) // each probe holds its slot for 2 s
		}
		l.join("a", func(c *discovery.Config) { c.MaxProbes = 6; c.Prober = own })
		for _, n := range names {
			l.join(n)
		}
		advance(5 * time.Second)
		own.mu.Lock()
		peak := own.peak
		own.mu.Unlock()
		assert.Equal(t, 3, peak, "the cap is reached and never passed")
		for _, n := range names {
			assert.Positive(t, own.count(n+":1"), "%s was probed", n)
		}
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

// Announcements are spread over AnnounceInterval ± AnnounceJitter, so that
// members started together do not announce in step.
func TestAnnouncementsJittered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		ear := l.lan.Join()
		t.Cleanup(func() { ear.Close() })
		l.join("a")
		var gaps []time.Duration
		last := time.Now()
		buf := make([]byte, 2048)
		for len(gaps) < 30 {
			_, err := ear.Receive(buf) // durably blocks until the next announcement
			require.NoError(t, err)
			gaps = append(gaps, time.Since(last))
			last = time.Now()
		}
		gaps = gaps[1:] // the first is the query on join, at once
		distinct := map[time.Duration]bool{}
		for _, g := range gaps {
			assert.GreaterOrEqual(t, g, 900*time.Millisecond)
			assert.LessOrEqual(t, g, 1100*time.Millisecond)
			distinct[g] = true
		}
		assert.Greater(t, len(distinct), 20, "intervals vary: %v", gaps)
	})
}

// A member that failed a probe is probed again after SuspectProbeInterval,
// so a crashed one (refusing connections) is removed within one
// ProbeInterval plus two suspect intervals.
func TestSuspectProbedSooner(t *testing.T) {
	for _, tc := range []struct {
		suspect time.Duration
		within  time.Duration
	}{{0, 3 * time.Second}, {2 * time.Second, 6 * time.Second}} {
		t.Run(tc.suspect.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t)
				l.join("a")
				b, _ := l.join("b", func(c *discovery.Config) { c.SuspectProbeInterval = tc.suspect })
				synctest.Wait()
				rb := record(b)
				l.health.set("a:1", refuse)
				start := time.Now()
				for len(rb.of(discovery.Left, "a")) == 0 {
					advance(50 * time.Millisecond)
					require.Less(t, time.Since(start), 20*time.Second)
				}
				assert.LessOrEqual(t, time.Since(start), tc.within)
				assert.Greater(t, time.Since(start), tc.within-2*time.Second-50*time.Millisecond)
			})
		})
	}
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

// A newcomer's query heard twice, by IPv4 and by IPv6, is answered once,
// by one announcement multicast to the group, which both of the
// newcomer's sockets receive. A query again later is answered again.
func TestQueryCopyAnsweredOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		l.join("a", func(c *discovery.Config) { c.AnnounceJitter = -1 })
		// Two endpoints of one newcomer, as its IPv4 and IPv6 sockets.
		var v4, v6 atomic.Int64 // answers from a
		answers := func(n *atomic.Int64) func(*codec.Message) {
			return func(m *codec.Message) {
				if m.ID == "a" {
					n.Add(1)
				}
			}
		}
		e4, e6 := l.listen(answers(&v4)), l.listen(answers(&v6))
		l.health.set("n:1", up)
		q, err := pipe.Codec{}.Encode(nil, &codec.Message{Kind: codec.Query, Group: "web", ID: "n", Health: "tcp://n:1", Comms: "tcp://n:1"})
		require.NoError(t, err)

		require.NoError(t, e4.Send(q))
		advance(time.Millisecond)
		require.NoError(t, e6.Send(q))
		advance(200 * time.Millisecond) // past any coalesced answer, before a's first announcement
		assert.Equal(t, int64(1), v4.Load(), "one answer, multicast")
		assert.Equal(t, int64(1), v6.Load(), "the same answer reached both sockets")

		require.NoError(t, e6.Send(q))
		synctest.Wait()
		assert.Equal(t, int64(2), v6.Load(), "a query later is a new one")
	})
}
