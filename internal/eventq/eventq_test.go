package eventq

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// run starts s in a goroutine and returns a wait for its end.
func run(s *Subscriber[int], remove func()) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.Run(remove)
	}()
	return wg.Wait
}

func TestFinishDeliversAllInOrder(t *testing.T) {
	var got []int
	s := New(func(e int) bool { got = append(got, e); return true }, Policy[int]{})
	for i := range 100 {
		s.Push(i)
	}
	wait := run(s, func() { t.Error("removed") })
	s.Push(100)
	s.Finish()
	wait()
	want := make([]int, 101)
	for i := range want {
		want[i] = i
	}
	assert.Equal(t, want, got)
}

func TestStopDropsWhatIsQueued(t *testing.T) {
	block := make(chan struct{})
	var got []int
	s := New(func(e int) bool { <-block; got = append(got, e); return true }, Policy[int]{})
	wait := run(s, func() {})
	s.Push(1)
	s.Push(2)
	s.Push(3)
	s.Stop()
	close(block)
	wait()
	assert.LessOrEqual(t, len(got), 1, "at most the event already being delivered")
	s.Push(4) // after Stop: nothing, and no panic
}

func TestReturningFalseUnsubscribes(t *testing.T) {
	var got []int
	removed := 0
	s := New(func(e int) bool { got = append(got, e); return e < 2 }, Policy[int]{})
	for i := range 5 {
		s.Push(i)
	}
	wait := run(s, func() { removed++ })
	wait()
	assert.Equal(t, []int{0, 1, 2}, got)
	assert.Equal(t, 1, removed)
}

// ev is a test event: a subject, a class and a value; prev is the value
// before the change, as discovery's Event.Prev.
type ev struct {
	subject string
	class   Class
	v, prev int
}

func evPolicy(limit int, dropped, merged *int) Policy[ev] {
	return Policy[ev]{
		Classify: func(e ev) (string, Class) { return e.subject, e.class },
		Merge:    func(old, new ev) ev { new.prev = old.prev; return new },
		Limit:    limit,
		Dropped:  func() { *dropped++ },
		Merged:   func() { *merged++ },
	}
}

// drain runs s to the end (after Finish) and returns what it delivered.
func drain(s *Subscriber[ev], got *[]ev) []ev {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Run(func() {}) }()
	s.Finish()
	wg.Wait()
	return *got
}

func collector() (*[]ev, func(ev) bool) {
	var got []ev
	return &got, func(e ev) bool { got = append(got, e); return true }
}

// Changes to one subject while the listener is away merge into one event,
// newest wins, with the first pending event's prev: the listener sees
// from -> to. It goes to the back, after the other subjects' events.
func TestMergeNewestWinsKeepsFirstPrev(t *testing.T) {
	var dropped, merged int
	got, fn := collector()
	s := New(fn, evPolicy(0, &dropped, &merged))
	s.Push(ev{"a", Keep, 1, 0})
	for i := range 1000 {
		s.Push(ev{"a", Merge, 2 + i, 1 + i})
	}
	s.Push(ev{"b", Keep, 7, 0})
	s.Push(ev{"a", Merge + 1, 50, 40}) // another class: merged apart
	s.Push(ev{"a", Merge, 5000, 1001})
	assert.Equal(t, 4, s.Len())
	assert.Equal(t, []ev{
		{"a", Keep, 1, 0},
		{"b", Keep, 7, 0},
		{"a", Merge + 1, 50, 40},
		{"a", Merge, 5000, 1},
	}, drain(s, got))
	assert.Equal(t, 1000, merged)
	assert.Zero(t, dropped)
}

// An End drops its subject's pending merged events, not its Keep events:
// a subject that came and went before the listener looked is seen to come
// and go, in order; and a merged event after the End starts afresh.
func TestEndDropsPendingMerged(t *testing.T) {
	var dropped, merged int
	got, fn := collector()
	s := New(fn, evPolicy(0, &dropped, &merged))
	s.Push(ev{"a", Keep, 1, 0})
	s.Push(ev{"a", Merge, 2, 1})
	s.Push(ev{"a", Merge + 1, 3, 2})
	s.Push(ev{"b", Merge, 9, 8})
	s.Push(ev{"a", End, 4, 0})
	s.Push(ev{"a", Keep, 5, 0})
	s.Push(ev{"a", Merge, 6, 5})
	assert.Equal(t, []ev{
		{"a", Keep, 1, 0},
		{"b", Merge, 9, 8},
		{"a", End, 4, 0},
		{"a", Keep, 5, 0},
		{"a", Merge, 6, 5},
	}, drain(s, got))
	assert.Equal(t, 2, merged)
	assert.Zero(t, dropped)
}

// Beyond Limit, events that merge with none are dropped and counted; those
// that merge still replace theirs, so the latest state still gets through.
func TestLimitDropsAndCounts(t *testing.T) {
	var dropped, merged int
	got, fn := collector()
	s := New(fn, evPolicy(3, &dropped, &merged))
	s.Push(ev{"a", Keep, 1, 0})
	s.Push(ev{"b", Keep, 2, 0})
	s.Push(ev{"a", Merge, 3, 1})
	s.Push(ev{"c", Keep, 4, 0})  // dropped
	s.Push(ev{"c", Merge, 5, 4}) // dropped: nothing to merge with
	s.Push(ev{"a", Merge, 6, 3}) // merges
	assert.Equal(t, 3, s.Len())
	assert.Equal(t, []ev{{"a", Keep, 1, 0}, {"b", Keep, 2, 0}, {"a", Merge, 6, 1}}, drain(s, got))
	assert.Equal(t, 2, dropped)
	assert.Equal(t, 1, merged)
}

// A listener that never returns holds one event per subject and class,
// however many changes come.
func TestBlockedListenerStaysBounded(t *testing.T) {
	var dropped, merged int
	block := make(chan struct{})
	s := New(func(ev) bool { <-block; return true }, evPolicy(100, &dropped, &merged))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Run(func() {}) }()
	for i := range 100000 {
		s.Push(ev{"a", Merge + Class(i%2), i, i - 1})
	}
	assert.LessOrEqual(t, s.Len(), 2)
	s.Stop()
	close(block)
	wg.Wait()
}

// Calling is true only inside the listener; Done closes when Run returns.
func TestCallingAndDone(t *testing.T) {
	var s *Subscriber[int]
	inside := make(chan bool, 1)
	s = New(func(int) bool { inside <- s.Calling(); return true }, Policy[int]{})
	assert.False(t, s.Calling(), "before Run")
	wait := run(s, func() {})
	s.Push(1)
	assert.True(t, <-inside)
	assert.False(t, s.Calling(), "from another goroutine")
	select {
	case <-s.Done():
		t.Fatal("done before Finish")
	default:
	}
	s.Finish()
	wait()
	<-s.Done()
}
