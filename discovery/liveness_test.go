package discovery_test

import (
	"context"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/transport/mem"
)

// cutProber is one member's prober whose probes of one host hang until
// they time out while cut is set, as when the path between two hosts
// fails and every other path works.
type cutProber struct {
	inner healthcheck.Prober
	host  string
	cut   atomic.Bool
}

func (p *cutProber) Supports(scheme string) bool { return scheme == "tcp" }

func (p *cutProber) Probe(ctx context.Context, target *url.URL) error {
	if p.cut.Load() && target.Host == p.host {
		<-ctx.Done()
		return ctx.Err()
	}
	return p.inner.Probe(ctx, target)
}

// vanish makes member a vanish from the others: its announcements no
// longer reach them and its health port no longer answers.
func (l *lab) vanish(host string, ep *mem.Endpoint, others ...*mem.Endpoint) {
	l.lan.Partition([]*mem.Endpoint{ep}, others)
	l.health.set(host, silent)
}

// waitLeft advances the clock in small steps until g no longer lists id,
// and returns how long after start that was.
func waitLeft(t *testing.T, g *discovery.Group, id string, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	for time.Since(start) < limit {
		advance(50 * time.Millisecond)
		if _, ok := g.Member(id); !ok {
			return time.Since(start)
		}
	}
	t.Fatalf("%s still a member %v after the start", id, limit)
	return 0
}

// A member that vanishes (silent announcements, a probe that times out) is
// probed as soon as its announcement is late and removed when that probe
// times out and the member asked has nothing newer: one announce interval
// plus one probe timeout after the last announcement, not three probes.
func TestVanishedMemberFoundAfterOneTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		// The legacy engine's rule; ping_test.go's TestVanishedFoundByTimeout
		// is the frugal engine's.
		_, epA := l.join("a", legacy)
		b, epB := l.join("b", legacy)
		c, epC := l.join("c", legacy)
		advance(3 * time.Second)
		require.Len(t, b.Members(), 2)
		rb := record(b)

		l.vanish("a:1", epA, epB, epC)
		m, _ := b.Member("a")
		last := m.LastSeen
		took := waitLeft(t, b, "a", last, 10*time.Second)
		cfg := discovery.DefaultConfig("web", nil).WithDefaults()
		assert.Greater(t, took, cfg.ProbeTimeout, "no sooner than one timed-out probe")
		assert.LessOrEqual(t, took, cfg.LateAfter+cfg.ProbeTimeout+200*time.Millisecond,
			"found by the probe started when its announcement was late")
		left := rb.of(discovery.Left, "a")
		require.Len(t, left, 1)
		assert.Equal(t, discovery.Failed, left[0].Reason)
		s := b.Stats()
		assert.Equal(t, uint64(1), s.Confirmations, "c was asked first")
		assert.Zero(t, s.Refutations)

		waitLeft(t, c, "a", last, 10*time.Second)
	})
}

// When only the path between b and a fails (b hears no announcement from a
// and its probes of a time out), c, which still hears and probes a, refutes
// b's verdict: a stays a member of b.
func TestDeathRefutedByAnotherMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		_, epA := l.join("a")
		bp := &cutProber{inner: l.health, host: "a:1"}
		b, epB := l.join("b", func(c *discovery.Config) { c.Prober = bp })
		l.join("c")
		advance(3 * time.Second)
		require.Len(t, b.Members(), 2)
		rb := record(b)

		bp.cut.Store(true)
		l.lan.SetLinkLoss(epA, epB, 1)
		advance(8 * time.Second) // within ExpireAfter (10 s)
		_, ok := b.Member("a")
		assert.True(t, ok, "a stays a member of b")
		assert.Empty(t, rb.of(discovery.Left, "a"))
		s := b.Stats()
		assert.GreaterOrEqual(t, s.Refutations, uint64(1))
		assert.Equal(t, s.Confirmations, s.Refutations, "every death put to c was refuted")

		bp.cut.Store(false)
		l.lan.SetLinkLoss(epA, epB, 0)
		advance(5 * time.Second)
		m, ok := b.Member("a")
		require.True(t, ok)
		assert.Equal(t, 1.0, m.Health, "healthy again once the path works")
	})
}

// A member that announces but whose health port refuses is removed after
// three failed probes: another member's announcements of it do not count
// as evidence, only a successful probe would.
func TestAnnouncingButUnhealthyIsRemoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		// The legacy engine's rule; selfcheck_test.go's TestHealthTurns503
		// is the frugal engine's (a pinging member reports its own health).
		l.join("a", legacy)
		b, _ := l.join("b", legacy)
		l.join("c", legacy)
		advance(3 * time.Second)
		rb := record(b)
		l.health.set("a:1", refuse)
		start := time.Now()
		took := waitLeft(t, b, "a", start, 10*time.Second)
		assert.LessOrEqual(t, took, 2*time.Second+2*500*time.Millisecond+100*time.Millisecond,
			"three refused probes: the next regular one, then two at the suspect pace")
		left := rb.of(discovery.Left, "a")
		require.Len(t, left, 1)
		assert.Equal(t, discovery.Failed, left[0].Reason)
		s := b.Stats()
		assert.GreaterOrEqual(t, s.Confirmations, uint64(1))
		assert.Zero(t, s.Refutations, "c's fresh announcements of a are no evidence")
	})
}

// A killed member (port refused, announcements stopped) goes in about one
// second: a refused probe and a confirmation that answers at once. The
// legacy engine's rule; ping_test.go's TestKilledFoundByRefusal is the
// frugal engine's.
func TestKilledMemberFoundFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		_, epA := l.join("a", legacy)
		b, epB := l.join("b", legacy)
		_, epC := l.join("c", legacy)
		advance(3 * time.Second)
		l.lan.Partition([]*mem.Endpoint{epA}, []*mem.Endpoint{epB, epC})
		l.health.set("a:1", refuse)
		start := time.Now()
		took := waitLeft(t, b, "a", start, 10*time.Second)
		cfg := discovery.DefaultConfig("web", nil).WithDefaults()
		assert.LessOrEqual(t, took, cfg.ProbeInterval+cfg.SuspectProbeInterval+100*time.Millisecond)
	})
}

// Obituaries: one about a member still heard is ignored, one about a
// silent member removes it, and one about the receiver makes it announce
// at once.
func TestObituaries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		b, _ := l.join("b", func(c *discovery.Config) { c.AnnounceJitter = -1 })
		var heard atomic.Int64 // datagrams x receives from b
		x := l.listen(func(*codec.Message) { heard.Add(1) })
		send := func(m *codec.Message) {
			t.Helper()
			bs, err := pipe.Codec{}.Encode(nil, m)
			require.NoError(t, err)
			require.NoError(t, x.Send(bs))
			synctest.Wait()
		}
		obit := func(target string) *codec.Message {
			return &codec.Message{Kind: codec.Obituary, Group: "web", ID: "x", Target: target}
		}
		l.health.set("a:1", up)
		l.health.set("x:1", up)
		send(announce("web", "x")) // obituaries count only from a member
		send(announce("web", "a"))
		_, ok := b.Member("a")
		require.True(t, ok)

		send(obit("a"))
		_, ok = b.Member("a")
		assert.True(t, ok, "a was heard just now: the obituary is ignored")

		l.health.set("a:1", silent)
		advance(1500 * time.Millisecond) // a silent beyond LateAfter, its late probe hangs
		send(obit("a"))
		_, ok = b.Member("a")
		assert.False(t, ok, "removed on the obituary")
		assert.Equal(t, uint64(1), b.Stats().Obituaries)

		advance(300 * time.Millisecond) // b's announcements are 1 s apart
		before := heard.Load()
		send(obit("b"))
		assert.Equal(t, before+1, heard.Load(), "b answers an obituary about itself with an announcement")
	})
}

// With an original pir peer in the group, members confirming a death ask
// only members known to speak the extensions: an original never answers a
// Confirm, so asking it would leave the confirmation waiting for nothing
// (issue 14). a and b learn that the other speaks them without metadata
// or any confirmation yet: a from b's query, b from a's answer to it.
func TestOriginalsNeverAskedToConfirm(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { originalsNeverAskedToConfirm(t, e.set, e.name == "frugal") })
	}
}

func originalsNeverAskedToConfirm(t *testing.T, engine func(*discovery.Config), frugal bool) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		var asked atomic.Int32
		o := l.listen(func(m *codec.Message) {
			if m.Kind == codec.Confirm {
				asked.Add(1)
			}
		})
		l.health.set("o:1", up)
		plain, err := pipe.Codec{}.Encode(nil, announce("web", "o"))
		require.NoError(t, err)
		require.Equal(t, 3, strings.Count(string(plain), "|"), "what an original sends: four fields")
		done := make(chan struct{})
		defer close(done)
		go func() { // the original announces every second, as it does
			for {
				_ = o.Send(plain)
				select {
				case <-done:
					return
				case <-time.After(time.Second):
				}
			}
		}()
		a, epA := l.join("a", engine)
		b, epB := l.join("b", engine)
		_, epC := l.join("c", engine)
		advance(3 * time.Second)
		require.ElementsMatch(t, []string{"b", "c", "o"}, ids(a.Members()))
		require.ElementsMatch(t, []string{"a", "c", "o"}, ids(b.Members()))

		m, _ := a.Member("c")
		l.vanish("c:1", epC, epA, epB, o)
		waitLeft(t, a, "c", m.LastSeen, 10*time.Second)
		waitLeft(t, b, "c", m.LastSeen, 10*time.Second)
		assert.Zero(t, asked.Load(), "the original was asked to confirm")
		if frugal {
			// The first to miss c's ack confirms, and the other may take
			// its obituary: at least one asked the other.
			assert.Positive(t, a.Stats().Confirmations+b.Stats().Confirmations, "a or b asked the other")
			return
		}
		assert.Positive(t, a.Stats().Confirmations, "a asked b, which it knows from b's query")
		assert.Positive(t, b.Stats().Confirmations, "b asked a, which it knows from a's answer")
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

// A member that goes quiet expires even though its probe still answers: a
// legacy peer's rule (a pinging member that goes quiet is found by pings,
// Failed, and one that stays pingable expires after several of its
// intervals: rtcp_test.go).
func TestExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		_, epA := l.join("a", legacy)
		b, epB := l.join("b", legacy)
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
		_, epA := l.join("a", legacy)
		// Threshold: the default policy judges silence by itself.
		b, epB := l.join("b", legacy, thresholdPolicy, func(c *discovery.Config) { c.ExpireAfter = -1 })
		synctest.Wait()
		l.lan.Partition([]*mem.Endpoint{epA}, []*mem.Endpoint{epB})
		advance(60 * time.Second)
		_, ok := b.Member("a")
		assert.True(t, ok)
	})
}
