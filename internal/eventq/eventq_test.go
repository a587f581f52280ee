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
	s := New(func(e int) bool { got = append(got, e); return true })
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
	s := New(func(e int) bool { <-block; got = append(got, e); return true })
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
	s := New(func(e int) bool { got = append(got, e); return e < 2 })
	for i := range 5 {
		s.Push(i)
	}
	wait := run(s, func() { removed++ })
	wait()
	assert.Equal(t, []int{0, 1, 2}, got)
	assert.Equal(t, 1, removed)
}
