package discovery_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/discovery"
)

func ev(typ discovery.EventType, id string, meta string) discovery.Event {
	return discovery.Event{Type: typ, Member: discovery.Member{Peer: discovery.Peer{ID: id, Meta: map[string]string{"v": meta}}}}
}

// recv waits for the next event a test listener hands over.
func recv(t *testing.T, ch <-chan discovery.Event) discovery.Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
		return discovery.Event{}
	}
}

// TestListenersOrderAndUnsubscribe: replay first, then what is emitted, in
// order; a listener that returns false, or whose remove is called, gets no
// more.
func TestListenersOrderAndUnsubscribe(t *testing.T) {
	ls := discovery.NewListeners(0)
	defer ls.Close()
	got := make(chan discovery.Event, 16)
	ls.Add(func(e discovery.Event) bool { got <- e; return true }, ev(discovery.Joined, "a", "1"))
	once := make(chan discovery.Event, 16)
	ls.Add(func(e discovery.Event) bool { once <- e; return false })
	removed := make(chan discovery.Event, 16)
	remove := ls.Add(func(e discovery.Event) bool { removed <- e; return true })
	remove()
	assert.Equal(t, 2, ls.Len())

	ls.Emit(ev(discovery.Joined, "b", "1"))
	ls.Emit(ev(discovery.Left, "a", "1"))
	assert.Equal(t, "a", recv(t, got).Member.ID)
	assert.Equal(t, "b", recv(t, got).Member.ID)
	e := recv(t, got)
	assert.Equal(t, discovery.Left, e.Type)
	assert.Equal(t, "b", recv(t, once).Member.ID)
	require.Eventually(t, func() bool { return ls.Len() == 1 }, 10*time.Second, time.Millisecond,
		"a listener that returned false is removed")
	ls.Emit(ev(discovery.Joined, "c", "1"))
	assert.Equal(t, "c", recv(t, got).Member.ID)
	assert.Empty(t, once)
	assert.Empty(t, removed)
}

// TestListenersMergeAndBound: a listener that is stuck costs a bounded
// queue, a member's Updated events merge as a Group's do, and what is
// merged or dropped is counted.
func TestListenersMergeAndBound(t *testing.T) {
	ls := discovery.NewListeners(3)
	started := make(chan struct{})
	release := make(chan struct{})
	got := make(chan discovery.Event, 16)
	first := true
	ls.Add(func(e discovery.Event) bool {
		if first {
			first = false
			close(started)
			<-release
		}
		got <- e
		return true
	})
	ls.Emit(ev(discovery.Joined, "x", "0"))
	<-started // x's Joined is being delivered: the queue is empty

	ls.Emit(ev(discovery.Joined, "a", "0"))
	for i, v := range []string{"1", "2", "3"} {
		u := ev(discovery.Updated, "a", v)
		u.Prev = discovery.Member{Peer: discovery.Peer{ID: "a", Meta: map[string]string{"v": []string{"0", "1", "2"}[i]}}}
		ls.Emit(u)
	}
	ls.Emit(ev(discovery.Joined, "b", "0"))
	ls.Emit(ev(discovery.Joined, "c", "0")) // beyond the bound of 3: dropped
	assert.Equal(t, discovery.ListenersStats{Merged: 2, Dropped: 1}, ls.Stats())

	close(release)
	assert.Equal(t, "x", recv(t, got).Member.ID)
	assert.Equal(t, ev(discovery.Joined, "a", "0"), recv(t, got))
	u := recv(t, got)
	assert.Equal(t, discovery.Updated, u.Type)
	assert.Equal(t, "3", u.Member.Meta["v"], "the newest update")
	assert.Equal(t, "0", u.Prev.Meta["v"], "from what the listener saw last")
	assert.Equal(t, "b", recv(t, got).Member.ID)
	ls.Close()
	assert.Empty(t, got, "c was dropped")
}

// TestListenersClose: Close lets a listener have what is queued and waits
// for it; afterwards Add and Emit reach no one.
func TestListenersClose(t *testing.T) {
	ls := discovery.NewListeners(0)
	slow := make(chan struct{})
	var got []string
	ls.Add(func(e discovery.Event) bool { <-slow; got = append(got, e.Member.ID); return true })
	ls.Emit(ev(discovery.Joined, "a", "0"))
	ls.Emit(ev(discovery.Joined, "b", "0"))
	closed := make(chan struct{})
	go func() { ls.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned before the listener had its queued events")
	default:
	}
	close(slow)
	<-closed
	assert.Equal(t, []string{"a", "b"}, got, "read after Close returned: Close waited for the listener")
	ls.Add(func(discovery.Event) bool { t.Error("listener after Close"); return true }, ev(discovery.Joined, "z", "0"))
	ls.Emit(ev(discovery.Joined, "c", "0"))
	assert.Zero(t, ls.Len())
	ls.Close()
}

// DefaultMaxListenerQueue is what a Group with the default Config derives.
func TestDefaultMaxListenerQueue(t *testing.T) {
	assert.Equal(t, discovery.DefaultConfig("web", nil).WithDefaults().MaxListenerQueue, discovery.DefaultMaxListenerQueue)
}
