package discovery_test

import (
	"context"
	"fmt"
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
		_, epA := l.join("a")
		b, epB := l.join("b")
		c, epC := l.join("c")
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
		l.join("a")
		b, _ := l.join("b")
		l.join("c")
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
// second: a refused probe and a confirmation that answers at once.
func TestKilledMemberFoundFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		_, epA := l.join("a")
		b, epB := l.join("b")
		_, epC := l.join("c")
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

// Above ProbeAllUpTo members, each member probes ProbeFanout members per
// ProbeInterval, whatever the size of the group; below it, every other
// member. A vanished member is still found, and the others learn it from
// obituaries.
func TestBoundedProbing(t *testing.T) {
	const n = 40
	name := func(i int) string { return fmt.Sprintf("m%02d", i) }
	cases := []struct {
		name    string
		allUpTo int
		lo, hi  float64 // probes per member per second
	}{
		{"all-to-all", -1, 19, 20.5}, // 39 members every 2 s: 19.5
		{"bounded", 0, 1.8, 2.2},     // the default, 32: 4 every 2 s
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t)
				groups := make([]*discovery.Group, n)
				eps := make([]*mem.Endpoint, n)
				for i := range n {
					groups[i], eps[i] = l.join(name(i), func(c *discovery.Config) { c.ProbeAllUpTo = tc.allUpTo })
				}
				advance(10 * time.Second)
				for _, g := range groups {
					require.Len(t, g.Members(), n-1)
				}
				total := func() int {
					sum := 0
					for i := range n {
						sum += l.health.count(name(i) + ":1")
					}
					return sum
				}
				before := total()
				const window = 20 * time.Second
				advance(window)
				rate := float64(total()-before) / n / window.Seconds()
				t.Logf("%s: %.2f probes per member per second", tc.name, rate)
				assert.GreaterOrEqual(t, rate, tc.lo)
				assert.LessOrEqual(t, rate, tc.hi)

				l.vanish(name(0)+":1", eps[0], eps[1:]...)
				start := time.Now()
				for _, g := range groups[1:] {
					waitLeft(t, g, name(0), start, 8*time.Second)
				}
				var obits uint64
				for _, g := range groups[1:] {
					obits += g.Stats().Obituaries
				}
				if tc.allUpTo < 0 {
					assert.Zero(t, obits, "every member finds the death itself")
				} else {
					assert.Positive(t, obits, "most members learn the death from an obituary")
				}
			})
		})
	}
}

// With an original pir peer in the group, members confirming a death ask
// only members known to speak the extensions: an original never answers a
// Confirm, so asking it would leave the confirmation waiting for nothing
// (issue 14). a and b learn that the other speaks them without metadata
// or any confirmation yet: a from b's query, b from a's answer to it.
func TestOriginalsNeverAskedToConfirm(t *testing.T) {
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
		a, epA := l.join("a")
		b, epB := l.join("b")
		_, epC := l.join("c")
		advance(3 * time.Second)
		require.ElementsMatch(t, []string{"b", "c", "o"}, ids(a.Members()))
		require.ElementsMatch(t, []string{"a", "c", "o"}, ids(b.Members()))

		m, _ := a.Member("c")
		l.vanish("c:1", epC, epA, epB, o)
		waitLeft(t, a, "c", m.LastSeen, 10*time.Second)
		waitLeft(t, b, "c", m.LastSeen, 10*time.Second)
		assert.Zero(t, asked.Load(), "the original was asked to confirm")
		assert.Positive(t, a.Stats().Confirmations, "a asked b, which it knows from b's query")
		assert.Positive(t, b.Stats().Confirmations, "b asked a, which it knows from a's answer")
	})
}
