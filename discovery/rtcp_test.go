package discovery_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
)

// frugal turns on the ping protocol, whose members announce under the
// group's rate (AnnounceRate, default 0.1 a second for the whole group).
// The original pir's probe rule keeps these tests about announcements:
// the lab's probes always answer, and TCP probes are rare.
func frugal(c *discovery.Config) {
	c.PingInterval = time.Second
	c.ProbeInterval = time.Hour
	thresholdPolicy(c)
}

// announcements counts the announcements each member multicasts, with the
// time of each, as a listener on the LAN hears them.
type announcements struct {
	mu    sync.Mutex
	times map[string][]time.Time
	plain map[string]int // of them, plain ones (four fields, no ARGS)
}

func (l *lab) countAnnouncements() *announcements {
	a := &announcements{times: map[string][]time.Time{}, plain: map[string]int{}}
	l.listen(func(m *codec.Message) {
		if m.Kind != codec.Announce {
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.times[m.ID] = append(a.times[m.ID], time.Now())
		if !m.Extended {
			a.plain[m.ID]++
		}
	})
	return a
}

// between counts the announcements of id (every member's when id is
// empty) heard in [from, to).
func (a *announcements) between(id string, from, to time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for who, ts := range a.times {
		if id != "" && who != id {
			continue
		}
		for _, t := range ts {
			if !t.Before(from) && t.Before(to) {
				n++
			}
		}
	}
	return n
}

func joinMany(l *lab, n int, gap time.Duration, mutate ...func(*discovery.Config)) []*discovery.Group {
	gs := make([]*discovery.Group, n)
	for i := range gs {
		gs[i], _ = l.join(fmt.Sprintf("m%02d", i), mutate...)
		advance(gap)
	}
	return gs
}

// The whole group announces AnnounceRate times a second, whatever its
// size: 30 members over 3,000 s send about 300 announcements, where the
// fixed interval would send 90,000.
func TestAnnounceRateBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a := l.countAnnouncements()
		// A second apart: a join that overlaps another can miss its
		// admission's vouch, and the fallback (the newcomer heard again)
		// is a periodic announcement away; repair through pings and the
		// state transfer (docs/design/frugal.md, steps 7 and 8) cover it.
		gs := joinMany(l, 30, time.Second, frugal)
		advance(200 * time.Second) // past the first waits
		for _, g := range gs {
			require.Len(t, g.Members(), 29)
		}
		from := time.Now()
		const window = 3000 * time.Second
		advance(window)
		n := a.between("", from, time.Now())
		rate := float64(n) / window.Seconds()
		t.Logf("%d announcements in %v: %.3f a second for the group", n, window, rate)
		assert.LessOrEqual(t, rate, 0.1*1.1, "the group's rate stays under AnnounceRate")
		assert.GreaterOrEqual(t, rate, 0.1*0.8, "and members still announce")
		for _, g := range gs {
			assert.Len(t, g.Members(), 29, "%s: nobody expired for announcing rarely", g.Self().ID)
		}
	})
}

// Members that join together do not announce at the short wait of the
// small group each saw when it started: when a member's timer fires, the
// group it now counts pushes its announcement out (forward
// reconsideration). Without it, each of 50 would announce within 15 s.
func TestReconsiderationOnMassJoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a := l.countAnnouncements()
		start := time.Now()
		joinMany(l, 50, 20*time.Millisecond, frugal) // 50 within 1 s
		advance(110*time.Second - time.Since(start))
		n := a.between("", start.Add(10*time.Second), start.Add(110*time.Second))
		assert.LessOrEqual(t, n, 10, "periodic announcements in the 100 s after the joins' answers")
	})
}

// When most of the group leaves, the survivors announce soon, not at the
// wait of the group they were (reverse reconsideration): 40 of 50 leave,
// and each of the 10 left announces within a fifth of its longest wait.
func TestReverseReconsideration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a := l.countAnnouncements()
		gs := joinMany(l, 50, 20*time.Millisecond, frugal)
		advance(600 * time.Second)
		for _, g := range gs[10:] {
			require.NoError(t, g.Leave(context.Background()))
		}
		synctest.Wait()
		left := time.Now()
		for _, g := range gs[:10] {
			require.Len(t, g.Members(), 9)
		}
		// T(50) is 500 s, drawn up to 750 s; a fifth of it is 150 s.
		advance(155 * time.Second)
		for _, g := range gs[:10] {
			assert.Positive(t, a.between(g.Self().ID, left, time.Now()), "%s announced after the group shrank", g.Self().ID)
		}
	})
}

// A peer that does not ping (here an original pir peer) puts the group in
// legacy mode: every member announces each AnnounceInterval, plain, so the
// original learns them. Ten intervals after it falls silent, they go back
// to the group's rate.
func TestLegacyModeOnPlainPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a := l.countAnnouncements()
		gs := joinMany(l, 5, 50*time.Millisecond, frugal)
		advance(100 * time.Second)

		l.health.set("orig:1", up)
		orig := l.lan.Join()
		t.Cleanup(func() { orig.Close() })
		b, err := pipe.Codec{}.Encode(nil, announce("web", "orig"))
		require.NoError(t, err)
		start := time.Now()
		for range 20 { // the original announces each second for 20 s
			require.NoError(t, orig.Send(b))
			advance(time.Second)
		}
		last := time.Now().Add(-time.Second) // its last announcement
		for _, g := range gs {
			id := g.Self().ID
			// From 1.1 s after the original's first announcement, one a
			// second, each plain.
			for s := start.Add(1100 * time.Millisecond); s.Before(last); s = s.Add(1100 * time.Millisecond) {
				assert.Equal(t, 1, min(1, a.between(id, s, s.Add(1100*time.Millisecond))), "%s silent in [%v, +1.1s) of legacy mode", id, s.Sub(start))
			}
			a.mu.Lock()
			assert.GreaterOrEqual(t, a.plain[id], 17, "%s: plain announcements, which originals read", id)
			a.mu.Unlock()
		}
		// Ten intervals (ExpireAfter) after the original's last word,
		// legacy mode ends: a last announcement or so, then the group's
		// rate (T(5) = 50 s, drawn from 25 s). A member's last plain
		// announcement comes after last + 10 s - 1.1 s (one every 0.9 to
		// 1.1 s until legacy mode ends), so its next after last + 33.9 s:
		// the window ended at 35 s before, and failed 1 run in 150 with
		// an announcement at last + 34.4 s.
		advance(40 * time.Second)
		assert.Zero(t, a.between("", last.Add(15*time.Second), last.Add(33*time.Second)), "back to the group's rate")
	})
}

// A member that announces at the group's rate announces once more one or
// two AnnounceIntervals after its start (its boot announcement; before it
// come only the answers to the others' queries), and then not for its
// first wait: members that started with it and missed its
// query and its vouch hear it again (the admission fallback), and their
// pings repair the rest. Ten `pir join` started together in the lab
// sometimes did not all meet within 20 s without it.
func TestBootAnnouncement(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a := l.countAnnouncements()
		gs := joinMany(l, 5, 0, frugal)
		start := time.Now()
		advance(20 * time.Second)
		for _, g := range gs {
			id := g.Self().ID
			assert.Equal(t, 1, a.between(id, start.Add(time.Second), start.Add(2*time.Second)), "%s: its boot announcement", id)
			assert.Zero(t, a.between(id, start.Add(2*time.Second), start.Add(20*time.Second)), "%s: then its first wait (T(5) ≥ 25 s)", id)
		}
	})
}
