package discovery

import "time"

type taskKind uint8

const (
	taskAnnounce taskKind = iota + 1
	taskProbe
	taskProbeSlot // a probe token is due: start waiting probes
	taskSilence   // a peer may be late (probe it) or silent too long (expire it)
	taskConfirm   // a confirmation's requests are sent again
	taskConfirmed // a confirmation ends: the peer is dead
	taskRound     // bounded probing: the next member of the round
)

// task is one timed job of the Group's goroutine. Probe and expiry tasks
// name a peer and the generation of its state they were scheduled for; a
// task whose peer has gone or changed is stale and skipped.
type task struct {
	at   time.Time
	kind taskKind
	id   string
	gen  uint64
	seq  uint64 // a confirmation's, for confirmation tasks
}

// schedule is a min-heap of tasks by time. Tasks are never removed early:
// stale ones are skipped when they come due, which keeps the hot path (an
// announcement from a known peer) free of heap work.
type schedule []task

func (s *schedule) push(t task) {
	*s = append(*s, t)
	h := *s
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h[i].at.Before(h[p].at) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

// next returns the earliest task's time, and false when there is none.
func (s schedule) next() (time.Time, bool) {
	if len(s) == 0 {
		return time.Time{}, false
	}
	return s[0].at, true
}

// pop removes and returns the earliest task.
func (s *schedule) pop() task {
	h := *s
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = task{}
	h = h[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h) && h[l].at.Before(h[m].at) {
			m = l
		}
		if r < len(h) && h[r].at.Before(h[m].at) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*s = h
	return top
}
