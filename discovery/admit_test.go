package discovery_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/discovery"
)

// group starts members named m0, m1, ... and lets them settle past their
// start, when a Group probes every peer it hears.
func group(t *testing.T, l *lab, n int, mutate ...func(*discovery.Config)) []*discovery.Group {
	t.Helper()
	var gs []*discovery.Group
	for i := range n {
		g, _ := l.join(fmt.Sprintf("m%d", i), mutate...)
		gs = append(gs, g)
	}
	advance(3 * time.Second)
	for _, g := range gs {
		require.Len(t, g.Members(), n-1)
	}
	return gs
}

// One forged announcement draws one probe from the whole group: its first
// prober's. The others wait for a vouch that never comes, and the peer,
// never heard again, is not probed again.
func TestOneProbePerForgery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		l.health.set("victim:22", silent)
		gs := group(t, l, 5)
		forge(t, l, 0, 1, "victim:22")
		advance(5 * time.Second)
		assert.Equal(t, 1, l.health.count("victim:22"), "one probe from the whole group")
		for _, g := range gs {
			assert.Equal(t, 1, g.Stats().Pending)
		}
		advance(6 * time.Second)
		assert.Equal(t, 1, l.health.count("victim:22"))
		for _, g := range gs {
			assert.Zero(t, g.Stats().Pending, "expired, unheard")
		}
	})
}

// A real newcomer is probed by its first prober at once, which vouches for
// it: every member has it joined long before its next announcement.
func TestVouchAdmitsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		gs := group(t, l, 5)
		l.join("new")
		advance(100 * time.Millisecond) // under AnnounceInterval/2: no fallback yet
		for i, g := range gs {
			_, ok := g.Member("new")
			assert.True(t, ok, "m%d has the newcomer", i)
		}
	})
}

// When the first prober's probe fails (or it is dead), the others probe a
// peer once it is heard again, half an announce interval after first. A
// legacy peer's rule: it announces every AnnounceInterval (a pinging
// newcomer is listed by S's offer and its pings' who=1 instead).
func TestFallbackWithoutVouch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		gs := group(t, l, 5, legacy)
		l.health.set("new:1", silent) // the first prober's probe hangs
		l.join("new", legacy)
		advance(100 * time.Millisecond)
		assert.Equal(t, 1, l.health.count("new:1"), "only the first prober probes")
		l.health.set("new:1", up)
		advance(1500 * time.Millisecond) // "new" announces again
		joined := 0
		for _, g := range gs {
			if _, ok := g.Member("new"); ok {
				joined++
			}
		}
		assert.Equal(t, 4, joined, "all but the first prober, whose probe still hangs")
	})
}

// A pending peer whose probe failed is probed again only when heard again,
// and dropped, silently, after its second failure.
func TestPendingFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		l.health.set("victim:22", refuse)
		gs := group(t, l, 1)
		a := gs[0]
		r := record(a)
		forge(t, l, 0, 1, "victim:22")
		advance(3 * time.Second)
		assert.Equal(t, 1, l.health.count("victim:22"), "not heard again: not probed again")
		assert.Equal(t, 1, a.Stats().Pending)

		forge(t, l, 0, 1, "victim:22") // heard again
		synctest.Wait()
		assert.Equal(t, 2, l.health.count("victim:22"))
		assert.Zero(t, a.Stats().Pending, "dropped after its second failure")
		assert.Empty(t, r.of(discovery.Left, "forged-000000"), "no event: it never joined")
	})
}

// A full pending pool makes room for a new peer: the oldest pending peer
// goes, and a real newcomer is admitted.
func TestFullPoolMakesRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		l.health.set("victim:22", silent)
		gs := group(t, l, 1, func(c *discovery.Config) { c.MaxPending = 16; c.NewPeerRate = -1 })
		a := gs[0]
		forge(t, l, 0, 40, "victim:22")
		synctest.Wait()
		s := a.Stats()
		assert.Equal(t, 16, s.Pending)
		assert.Equal(t, uint64(24), s.Dropped[discovery.DropPeerCap], "the oldest pending peers made room")
		l.join("new")
		advance(100 * time.Millisecond)
		_, ok := a.Member("new")
		assert.True(t, ok, "the newcomer was admitted")
	})
}

// At most two probes of pending peers heard from one address run at once.
func TestPendingProbesPerSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		own := newFakeHealth()
		own.set("victim:22", silent)
		// The peak counts admission probes: a's self-checks, which go
		// through the same Prober, are off.
		l.join("a", func(c *discovery.Config) { c.Prober = own; c.HealthInterval = -1 })
		advance(3 * time.Second)
		forge(t, l, 0, 20, "victim:22") // one source
		advance(5 * time.Second)
		own.mu.Lock()
		peak := own.peak
		own.mu.Unlock()
		assert.Equal(t, 2, peak)
		assert.Greater(t, own.count("victim:22"), 2, "the others waited their turn")
	})
}

// A member in its first moments (the window in which it probes everyone it
// hears, AnnounceInterval/4 after Join) vouches for a newcomer it ranks
// first prober of, when it pings: the others, which rank it first too,
// wait for its vouch. Before, it never vouched in that window, and the
// others held the newcomer pending until its next announcement
// (docs/design/frugal.md, "A member in its first AnnounceInterval/4").
func TestYoungMemberVouches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		// Announcements an hour apart: the window is 1 s + 15 minutes,
		// which the members leave before the young member joins.
		ms := l.joinGroup(10)
		advance(16 * time.Minute)
		young, _ := l.join("young", transferring)
		start := time.Now()
		for time.Since(start) < time.Second && !allList(ms, "young") {
			advance(10 * time.Millisecond)
		}
		require.True(t, allList(ms, "young"), "the young member is admitted")
		ms["young"] = member{g: young}
		// A newcomer whose first prober is the young member.
		x := ""
		for i := 0; x == ""; i++ {
			if f, _ := firstTwo(fmt.Sprintf("newcomer-%d", i), ms); f == "young" {
				x = fmt.Sprintf("newcomer-%d", i)
			}
		}
		l.join(x, transferring)
		start = time.Now()
		for time.Since(start) < 5*time.Second && !allList(ms, x) {
			advance(10 * time.Millisecond)
		}
		for name, m := range ms {
			_, ok := m.g.Member(x)
			assert.True(t, ok, "%s lists the newcomer", name)
		}
		assert.Less(t, time.Since(start), time.Second, "admitted on the young member's vouch")
		assert.Positive(t, young.Stats().ProbesOK, "the young member probed it")
	})
}

// allList reports whether every member lists id.
func allList(ms map[string]member, id string) bool {
	for _, m := range ms {
		if _, ok := m.g.Member(id); !ok {
			return false
		}
	}
	return true
}
