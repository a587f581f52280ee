package stress

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/score"
	"github.com/pirlan/pir/transport/multicast"
)

// memberLog counts, at all observers, the events about one member since
// it was made: removals, and joins after them (not AddListener's replay).
type memberLog struct {
	mu     sync.Mutex
	since  time.Time
	left   int
	joined int
}

func watchMember(gs []*discovery.Group, id string) *memberLog {
	l := &memberLog{since: time.Now()}
	for _, g := range gs {
		g.AddListener(func(e discovery.Event) bool {
			if e.Member.ID != id {
				return true
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			switch {
			case e.Type == discovery.Left:
				l.left++
			case e.Type == discovery.Joined && e.Member.Joined.After(l.since):
				l.joined++
			}
			return true
		})
	}
	return l
}

func (l *memberLog) counts() (left, joined int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.left, l.joined
}

// healthyAtAll reports whether every observer lists id, healthy.
func healthyAtAll(gs []*discovery.Group, id string) bool {
	for _, g := range gs {
		m, ok := g.Member(id)
		if !ok || m.Verdict != score.Healthy {
			return false
		}
	}
	return true
}

// TestForgedSelfClaim plays the forged self-claims of docs/design/frugal.md
// (section 4) without a key: a forger multicasts, from a live member's very
// address and port (a raw socket), a message under its ID that says what
// it did not: an announcement with a newer record whose count of failed
// self-checks is 2 (unhealthy) or 3 (dead by its own report, with the
// default policy), and a goodbye. The member hears it on the group's address, sees that it is
// not its own, and answers with its true announcement. Bounds: for the
// unhealthy claim, no member removes it and all list it healthy again
// within 100 ms; for the death and the goodbye, which act at once where
// they are taken, all list it again, healthy, within 1 s. A goodbye from
// another address than the member's removes it nowhere.
func TestForgedSelfClaim(t *testing.T) {
	for i, tc := range []struct {
		name  string
		msg   codec.Message
		bound time.Duration
		leave bool // the claim may remove the member before its answer comes
		// elsewhere: sent from another address than the member's (a
		// plain socket): a goodbye from there is dropped, spoofed.
		elsewhere bool
	}{
		{"unhealthy", codec.Message{Kind: codec.Announce, Pings: true, Version: 7, HealthFails: 2}, 100 * time.Millisecond, false, false},
		{"dead", codec.Message{Kind: codec.Announce, Pings: true, Version: 7, HealthFails: 3}, time.Second, true, false},
		{"goodbye", codec.Message{Kind: codec.Goodbye}, time.Second, true, false},
		{"goodbye from elsewhere", codec.Message{Kind: codec.Goodbye}, 100 * time.Millisecond, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := uint16(9590 + i)
			gs := lanGroup(t, 4, p)
			victim, observers := gs[0], gs[1:]
			for _, g := range gs {
				require.Zero(t, g.Stats().SelfClaimsRefuted, "%s took its own messages for forgeries", g.Self().ID)
			}
			require.Eventually(t, func() bool { return healthyAtAll(observers, "m1") }, 10*time.Second, 5*time.Millisecond,
				"m1 healthy at all")
			known, ok := observers[0].Member("m1")
			require.True(t, ok)
			log := watchMember(observers, "m1")
			refutedBefore := victim.Stats().SelfClaimsRefuted

			m := tc.msg
			m.Group, m.ID = "web", "m1"
			m.Health, m.Comms = known.HealthURI.String(), known.CommsURI.String()
			b, err := pipe.Codec{}.Encode(nil, &m)
			require.NoError(t, err)
			spoofedBefore := spoofedAt(observers)
			dst, from := netip.AddrPortFrom(multicast.DefaultGroupV4, p), known.Addr.String()
			if tc.elsewhere {
				setupSources(t)
				c := udpFrom(t, netip.AddrFrom4([4]byte{198, 18, 1, 1}), 0)
				from = c.LocalAddr().String()
				_, err = c.WriteToUDPAddrPort(b, dst)
			} else {
				err = newSpoofer(t).send(b, known.Addr, dst)
			}
			require.NoError(t, err)
			sent := time.Now()

			// The forgery is taken: removed, or unhealthy, at some member.
			require.Eventually(t, func() bool {
				left, _ := log.counts()
				return left > 0 || !healthyAtAll(observers, "m1") || victim.Stats().SelfClaimsRefuted > refutedBefore
			}, 5*time.Second, time.Millisecond, "the forged claim reached the members")
			back := assert.Eventually(t, func() bool { return healthyAtAll(observers, "m1") }, tc.bound, time.Millisecond,
				"m1 listed healthy again at all within %v of the forgery", tc.bound)
			took := time.Since(sent)
			left, joined := log.counts()
			t.Logf("figures: forged %s from %v: listed healthy by all again %v after it (within bound: %v); %d removals, %d joins at the 3 others; %d refutations",
				tc.name, from, took.Round(time.Millisecond), back, left, joined, victim.Stats().SelfClaimsRefuted-refutedBefore)
			assert.Equal(t, uint64(1), victim.Stats().SelfClaimsRefuted-refutedBefore, "one forgery, one refutation")
			if !tc.leave {
				assert.Zero(t, left, "the claim removes nobody")
			}
			if tc.elsewhere {
				assert.Eventually(t, func() bool { return spoofedAt(observers)-spoofedBefore >= 3 }, 5*time.Second, time.Millisecond,
					"the goodbye counted spoofed by the 3 others")
			}
			// Events reach listeners after the table changes, and under
			// load a member may take the forgery after the others listed m1
			// again: wait for every removal's Joined, then m1 healthy at all.
			assert.Eventually(t, func() bool {
				left, joined := log.counts()
				return left == joined && healthyAtAll(observers, "m1")
			}, 5*time.Second, time.Millisecond, "every member that removed m1 lists it again, healthy, with a Joined event")
		})
	}
}

// TestSelfClaimRefutationsLimited sprays forged announcements under a
// member's ID from its address, about 1,000 a second: it answers at most
// claimRate (4) a second, whatever the forger sends.
func TestSelfClaimRefutationsLimited(t *testing.T) {
	const p = 9595
	gs := lanGroup(t, 2, p)
	victim := gs[0]
	known, ok := gs[1].Member("m1")
	require.True(t, ok)
	sp := newSpoofer(t)
	m := codec.Message{Kind: codec.Announce, Group: "web", ID: "m1", Pings: true, Version: 7, HealthFails: 1,
		Health: known.HealthURI.String(), Comms: known.CommsURI.String()}
	b, err := pipe.Codec{}.Encode(nil, &m)
	require.NoError(t, err)
	dst := netip.AddrPortFrom(multicast.DefaultGroupV4, p)
	selfDrops := func() uint64 { return victim.Stats().Dropped[discovery.DropSelf] }
	start0 := selfDrops()
	stop := make(chan struct{})
	var sendErr atomic.Value
	done := make(chan struct{})
	go func() {
		defer close(done)
		spray(stop, func() int {
			if err := sp.send(b, known.Addr, dst); err != nil {
				sendErr.Store(err)
				return 0
			}
			return 1
		})
	}()
	defer func() {
		close(stop)
		<-done
	}()
	require.Eventually(t, func() bool { return selfDrops()-start0 >= 500 }, 20*time.Second, 5*time.Millisecond,
		"the victim reads the spray (send error: %v)", sendErr.Load())
	read0, refuted0, t0 := selfDrops(), victim.Stats().SelfClaimsRefuted, time.Now()
	require.Eventually(t, func() bool { return selfDrops()-read0 >= 2000 }, 20*time.Second, 5*time.Millisecond,
		"the victim reads the spray")
	read, refuted, window := selfDrops()-read0, victim.Stats().SelfClaimsRefuted-refuted0, time.Since(t0)
	t.Logf("figures: over %v the victim read %d forged announcements under its ID and refuted %d (%.1f a second)",
		window.Round(time.Millisecond), read, refuted, float64(refuted)/window.Seconds())
	assert.LessOrEqual(t, float64(refuted), refutationsPerSecond*window.Seconds()+1, "at most 4 refutations a second, and a burst of 1")
	assert.Positive(t, refuted, "the spray is refuted")
}

// refutationsPerSecond is discovery's bound on refutations (its claimRate).
const refutationsPerSecond = 4
