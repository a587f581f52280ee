package discovery_test

import (
	"context"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/transport/mem"
)

// spoofer sends announcements of member id from an endpoint of the test's:
// the member as a forger on its host, or a real member changing its
// metadata, would send them.
type spoofer struct {
	t  *testing.T
	ep *mem.Endpoint
	id string
}

func (l *lab) spoof(id string) *spoofer {
	l.health.set(id+":1", up)
	return &spoofer{t: l.t, ep: l.listen(func(*codec.Message) {}), id: id}
}

// send announces the member with metadata v=<v>.
func (s *spoofer) send(v int) {
	m := announce("web", s.id)
	m.Meta = map[string]string{"v": strconv.Itoa(v)}
	s.sendMsg(m)
}

func (s *spoofer) sendMsg(m *codec.Message) {
	b, err := pipe.Codec{}.Encode(nil, m)
	require.NoError(s.t, err)
	require.NoError(s.t, s.ep.Send(b))
}

// blocked is a listener that blocks on its first event until release is
// closed, then records every event.
type blocked struct {
	release chan struct{}
	events  chan discovery.Event
}

func block(g *discovery.Group) *blocked {
	b := &blocked{release: make(chan struct{}), events: make(chan discovery.Event, 1000)}
	first := true
	g.AddListener(func(e discovery.Event) bool {
		b.events <- e
		if first {
			first = false
			<-b.release
		}
		return true
	})
	return b
}

// received returns the events the listener took so far.
func (b *blocked) received() []discovery.Event {
	var out []discovery.Event
	for {
		select {
		case e := <-b.events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func meta(m discovery.Member) string { return m.Meta["v"] }

// A member whose metadata changes in every announcement, 20 times a
// second for 5 s, while a listener is blocked: the Group reports at most
// one Updated per half announce interval, and the listener's queue holds
// one Updated, from the metadata it saw last to the newest.
func TestListenerQueueMergesUpdates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		b, _ := l.join("b")
		a := l.spoof("a")
		a.send(0)
		synctest.Wait()
		require.Equal(t, []string{"a"}, ids(b.Members()))
		lb := block(b)
		synctest.Wait()
		for i := 1; i <= 100; i++ {
			a.send(i)
			advance(50 * time.Millisecond)
		}
		advance(time.Second) // the last window ends
		m, _ := b.Member("a")
		assert.Equal(t, "100", meta(m), "the state follows every change")
		s := b.Stats()
		updates := s.Events - 1 // but the Joined
		assert.LessOrEqual(t, updates, uint64(5*2+1), "one Updated per half interval")
		assert.GreaterOrEqual(t, updates, uint64(5*2-1))
		assert.Equal(t, uint64(99), s.UpdatesHeld, "every change but the first came within a window")
		assert.Equal(t, updates-1, s.EventsMerged, "the listener's queue holds one")

		close(lb.release)
		synctest.Wait()
		got := lb.received()
		require.Len(t, got, 2)
		assert.Equal(t, discovery.Joined, got[0].Type)
		assert.Equal(t, discovery.Updated, got[1].Type)
		assert.Equal(t, "0", meta(got[1].Prev), "from what the listener saw")
		assert.Equal(t, "100", meta(got[1].Member), "to the newest")
	})
}

// A change after a quiet spell is reported at once, and the next one
// within half an interval when that half interval ends.
func TestUpdatedRateLimitDefersNotDrops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		b, _ := l.join("b")
		a := l.spoof("a")
		a.send(0)
		synctest.Wait()
		rb := record(b)
		a.send(1)
		synctest.Wait()
		require.Len(t, rb.of(discovery.Updated, "a"), 1, "at once")
		advance(100 * time.Millisecond)
		a.send(2)
		synctest.Wait()
		require.Len(t, rb.of(discovery.Updated, "a"), 1, "held")
		advance(400 * time.Millisecond)
		up := rb.of(discovery.Updated, "a")
		require.Len(t, up, 2, "when the half interval ends")
		assert.Equal(t, "1", meta(up[1].Prev))
		assert.Equal(t, "2", meta(up[1].Member))
	})
}

// A member that changes, leaves and comes back while the listener is
// blocked: its pending Updated is dropped by its Left, and the listener
// sees it join, leave and join again, in order.
func TestListenerQueueLeftDropsPendingUpdated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		b, _ := l.join("b")
		c := l.spoof("c") // the listener blocks on c's Joined
		c.send(0)
		synctest.Wait()
		lb := block(b)
		synctest.Wait()
		a := l.spoof("a")
		a.send(0)
		synctest.Wait()
		a.send(1)
		synctest.Wait()
		a.sendMsg(&codec.Message{Kind: codec.Goodbye, Group: "web", ID: "a"})
		synctest.Wait()
		a.send(2)
		synctest.Wait()
		require.Equal(t, []string{"a", "c"}, ids(b.Members()))

		close(lb.release)
		synctest.Wait()
		var got []string
		for _, e := range lb.received()[1:] {
			got = append(got, e.Type.String()+" "+e.Member.ID+" "+meta(e.Member))
		}
		assert.Equal(t, []string{"joined a 0", "left a 1", "joined a 2"}, got)
		assert.Equal(t, uint64(1), b.Stats().EventsMerged)
	})
}

// Beyond MaxListenerQueue, events are dropped and counted.
func TestListenerQueueLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		b, _ := l.join("b", func(c *discovery.Config) { c.MaxListenerQueue = 3 })
		l.spoof("first").send(0)
		synctest.Wait()
		lb := block(b) // blocked on first's Joined, which left the queue
		synctest.Wait()
		for i := range 5 {
			l.spoof("m" + strconv.Itoa(i)).send(0)
			synctest.Wait()
		}
		assert.Equal(t, uint64(2), b.Stats().EventsDropped)
		close(lb.release)
		synctest.Wait()
		var got []string
		for _, e := range lb.received() {
			got = append(got, e.Member.ID)
		}
		assert.Equal(t, []string{"first", "m0", "m1", "m2"}, got)
	})
}

// A listener may call Close, Leave or Shutdown: the call returns (it does
// not wait for the listener calling it), and the Group's Done closes once
// the listener has returned. Two listeners calling at once do not wait
// for each other.
func TestListenerMayStopTheGroup(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(g *discovery.Group) error
	}{
		{"Close", (*discovery.Group).Close},
		{"Leave", func(g *discovery.Group) error { return g.Leave(context.Background()) }},
		{"Shutdown", func(g *discovery.Group) error { return g.Shutdown(context.Background()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t)
				l.join("a")
				b, _ := l.join("b")
				synctest.Wait()
				errs := make(chan error, 2)
				// Both listeners are added before either stops b: the
				// first could otherwise stop it before the second
				// AddListener, which then adds nothing (the test hung
				// waiting for its error).
				added := make(chan struct{})
				for range 2 {
					b.AddListener(func(e discovery.Event) bool {
						<-added
						errs <- tc.stop(b)
						return true
					})
				}
				close(added)
				synctest.Wait()
				for range 2 {
					assert.NoError(t, <-errs)
				}
				<-b.Done()
			})
		})
	}
}

// Done closes only once every listener has returned: Close waits for a
// slow one, and Done follows.
func TestDoneWaitsForListeners(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		l.join("a")
		b, _ := l.join("b")
		synctest.Wait()
		lb := block(b)
		synctest.Wait()
		closed := make(chan error, 1)
		go func() { closed <- b.Close() }()
		advance(time.Second)
		select {
		case <-b.Done():
			t.Fatal("Done before the listener returned")
		case <-closed:
			t.Fatal("Close returned before the listener did, within its bound")
		default:
		}
		close(lb.release)
		require.NoError(t, <-closed)
		<-b.Done()
	})
}

// A listener that never returns: Shutdown returns when its context ends,
// naming the listener; Close when CloseTimeout ends. The listener gets no
// more events, and Done closes once it returns.
func TestShutdownAbandonsStuckListener(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		l.join("a")
		l.join("c")
		b, _ := l.join("b", func(c *discovery.Config) { c.CloseTimeout = 3 * time.Second })
		synctest.Wait()
		lb := block(b) // blocked on a's Joined; c's waits
		synctest.Wait()

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		err := b.Shutdown(ctx)
		assert.Equal(t, 2*time.Second, time.Since(start))
		var se *discovery.ShutdownError
		require.ErrorAs(t, err, &se)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Len(t, se.Listeners, 1)
		assert.Contains(t, se.Listeners[0], "discovery_test.block")
		assert.False(t, se.Internal)

		start = time.Now()
		require.ErrorAs(t, b.Close(), &se, "Close is bounded too")
		assert.Equal(t, 3*time.Second, time.Since(start))

		select {
		case <-b.Done():
			t.Fatal("Done while the listener runs")
		default:
		}
		close(lb.release)
		<-b.Done()
		assert.Len(t, lb.received(), 1, "no event after the one it was in")
		assert.NoError(t, b.Close(), "nothing runs any more")
	})
}

// Leave is idempotent: the goodbye goes once, and a second Leave, or a
// Leave after Close, returns nil.
func TestLeaveIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		goodbyes := 0
		l.listen(func(m *codec.Message) {
			if m.Kind == codec.Goodbye {
				goodbyes++
			}
		})
		a, _ := l.join("a")
		c, _ := l.join("c")
		synctest.Wait()
		require.NoError(t, a.Leave(context.Background()))
		require.NoError(t, a.Leave(context.Background()))
		synctest.Wait()
		assert.Equal(t, 2, goodbyes, "one goodbye, sent twice")
		require.NoError(t, c.Close())
		require.NoError(t, c.Leave(context.Background()))
		synctest.Wait()
		assert.Equal(t, 2, goodbyes, "no goodbye after Close")
	})
}
