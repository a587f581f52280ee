package auth

import "sync"

// windowSize is how far behind the highest sequence number seen from a
// sender a datagram may arrive and still be accepted (once): the width of
// the sliding-window bitmap, as in IPsec and DTLS.
const windowSize = 64

// sender is what a receiver remembers of one sender: the highest sequence
// number accepted and which of the windowSize numbers below it were
// accepted too.
type sender struct {
	id   uint64
	max  uint64
	bits uint64 // bit i set: max-i was accepted
	// seen is the receiver's clock, unix ms, when a datagram of this
	// sender was last accepted.
	seen int64
	// prev and next link the senders from the most recently seen (head)
	// to the least (tail); -1 ends the list.
	prev, next int32
}

// replayTable remembers at most max senders. When full, the least recently
// seen sender is forgotten to make room for a new one.
type replayTable struct {
	mu         sync.Mutex
	max        int
	index      map[uint64]int32
	senders    []sender
	head, tail int32
	// evicted counts senders forgotten while their datagrams could still
	// be fresh, each a gap in replay protection.
	evicted uint64
}

func newReplayTable(max int) *replayTable {
	return &replayTable{max: max, index: make(map[uint64]int32), head: -1, tail: -1}
}

// copyWindow is how soon, in ms, after a sender's latest accepted datagram
// a second copy of one of its datagrams counts as a copy that came by
// another path (IPv4 and IPv6, two interfaces) rather than as a replay.
const copyWindow = 1000

// verdict is what the table says of a datagram.
type verdict uint8

const (
	fresh     verdict = iota // new: accept it
	duplicate                // accepted already, within copyWindow of the sender's latest
	replayed                 // accepted already, or too far behind to tell
)

// accept records datagram seq of sender id, received at now (unix ms), and
// says whether it is new. It is not when its sequence number was accepted
// before (a duplicate if the sender was heard within copyWindow, else a
// replay) or is more than windowSize below the highest seen (a replay). A
// sender last seen more than forgetAfter ms ago can be forgotten safely
// (replays of its datagrams are stale by then); forgetting one seen more
// recently counts as an eviction.
func (t *replayTable) accept(id, seq uint64, now, forgetAfter int64) verdict {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := t.index[id]; ok {
		s := &t.senders[i]
		switch {
		case seq > s.max:
			if d := seq - s.max; d < windowSize {
				s.bits = s.bits<<d | 1
			} else {
				s.bits = 1
			}
			s.max = seq
		case s.max-seq >= windowSize:
			return replayed // too old to tell
		case s.bits&(1<<(s.max-seq)) != 0:
			if now-s.seen <= copyWindow {
				return duplicate
			}
			return replayed
		default:
			s.bits |= 1 << (s.max - seq)
		}
		s.seen = now
		t.moveToFront(i)
		return fresh
	}
	var i int32
	if len(t.senders) < t.max {
		i = int32(len(t.senders))
		t.senders = append(t.senders, sender{prev: -1, next: -1})
	} else {
		i = t.tail
		old := &t.senders[i]
		if now-old.seen <= forgetAfter {
			t.evicted++
		}
		delete(t.index, old.id)
	}
	s := &t.senders[i]
	s.id, s.max, s.bits, s.seen = id, seq, 1, now
	t.index[id] = i
	t.moveToFront(i)
	return fresh
}

func (t *replayTable) unlink(i int32) {
	s := &t.senders[i]
	if s.prev >= 0 {
		t.senders[s.prev].next = s.next
	} else if t.head == i {
		t.head = s.next
	}
	if s.next >= 0 {
		t.senders[s.next].prev = s.prev
	} else if t.tail == i {
		t.tail = s.prev
	}
	s.prev, s.next = -1, -1
}

func (t *replayTable) moveToFront(i int32) {
	if t.head == i {
		return
	}
	t.unlink(i)
	s := &t.senders[i]
	s.next = t.head
	if t.head >= 0 {
		t.senders[t.head].prev = i
	}
	t.head = i
	if t.tail < 0 {
		t.tail = i
	}
}

// stats returns the number of senders remembered and the evictions so far.
func (t *replayTable) stats() (senders int, evicted uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.senders), t.evicted
}
