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
	taskUpdate    // a member's Updated rate limit window ends (gen: its seq)
	taskAnswer    // the coalesced answer to queries is due (see answerSoon)
	taskPull      // pulls of the state transfer are due again (transfer.go)
	taskServe     // a page token is due for queued pulls (transfer.go)
	taskReport    // the second copy of a health report is due (gen: its seq)
	taskRecord    // the report of an Update that waited for updateRate is due

	// The ping protocol (ping.go). A ping's tasks carry its flight's seq
	// in gen.
	taskPing        // the round's next ping is due
	taskPingResend  // a ping is sent again
	taskPingTimeout // a ping times out, or its refusal's grace ends
	taskDeathPing   // a death's next round (gen: the death's seq)
	taskObituary    // a death's obituary is sent again (gen: the death's seq)
	taskObitRemove  // an obituary's grace ends (gen: the peer state's gen)
	taskRefute      // our refutation of an obituary about us is sent again
	taskReconnect   // a member removed as Failed is pinged
	taskWelcome     // a member that joined here gets its welcome ping (gen: its peer state's)
	taskBoot        // our announcement a second or two after our start (rtcp.go)
)

// task is one timed job of the Group's goroutine: 32 bytes. Probe and
// expiry tasks name a peer and the generation of its state they were
// scheduled for; a task whose peer has gone or changed is stale and
// skipped. A confirmation's tasks carry its seq in gen instead: seqs are
// never reused, and a new generation drops the confirmation, so the seq
// alone says whether they are stale. Both are only ever compared for
// equality, and a task is stale long before 2³² more of either could
// come, so 32 bits do.
type task struct {
	at   instant
	id   string
	gen  uint32 // the peer state's gen; for taskConfirm and taskConfirmed, the confirmation's seq
	kind taskKind
}

// instant is a time as the owner goroutine keeps it, in peer state and in
// tasks: nanoseconds since the Group's epoch, 8 bytes where a time.Time
// takes 24. The epoch lies before anything the Group records, so zero
// means "never" or "none". Arithmetic on durations goes through
// time.Time (Group.time, then Group.at), which saturates rather than
// overflows.
type instant int64

// at is t as an instant.
func (g *Group) at(t time.Time) instant { return instant(t.Sub(g.epoch)) }

// time is i as a time.Time, with a monotonic reading when the epoch has
// one, as time.Now's do.
func (g *Group) time(i instant) time.Time { return g.epoch.Add(time.Duration(i)) }

// schedule is a min-heap of tasks by time. Tasks are never looked for to
// be removed: stale ones are skipped when they reach the head (the owner's
// dropStale, before it arms its timer) or come due, which keeps the hot
// path (an announcement from a known peer) free of heap work.
type schedule []task

func (s *schedule) push(t task) {
	*s = append(*s, t)
	h := *s
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[i].at >= h[p].at {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

// next returns the earliest task's time, and false when there is none.
func (s schedule) next() (instant, bool) {
	if len(s) == 0 {
		return 0, false
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
		if l < len(h) && h[l].at < h[m].at {
			m = l
		}
		if r < len(h) && h[r].at < h[m].at {
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
