package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/pirlan/pir/internal/lab"
	"github.com/pirlan/pir/internal/lab/pircli"
)

// The measurements, in the order they are made and printed.
const (
	mNewSeesAll = "join, new sees all"
	mAllSeeNew  = "join, all see new"
	mGoodbye    = "goodbye"
	mCrash      = "crash"
	mLinkDown   = "link down"
)

var measurements = []struct{ name, what string }{
	{mNewSeesAll, "process start → its last `joined`"},
	{mAllSeeNew, "process start → last `joined` about it"},
	{mGoodbye, "SIGINT → last `left (goodbye)`"},
	{mCrash, "SIGKILL → last `left`"},
	{mLinkDown, "cable pulled → last `left`"},
}

// phaseSpread is the longest random wait before a removal: pir's default
// probe interval.
const phaseSpread = 2 * time.Second

// sample is one measurement of one run.
type sample struct {
	Run  int    `json:"run"`
	Name string `json:"name"`
	// Read is the time from the action to the last line read.
	Read time.Duration `json:"read_ns"`
	// Event is the time from the action to the time field of that line.
	Event time.Duration `json:"event_ns"`
	// Reasons counts the reasons of the left lines.
	Reasons map[string]int `json:"reasons,omitempty"`
}

// oneRun makes a lab, starts the members and makes the five
// measurements.
func oneRun(ctx context.Context, o options, pir string, run int, progress func(string, ...any)) (samples []sample, err error) {
	l, err := lab.New(lab.Config{Hosts: o.hosts})
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, 5*waitTimeout)
	defer cancel()

	var args []string
	if o.family != "" {
		args = []string{"-" + o.family}
	}
	hosts := l.Hosts()
	var members []*pircli.Peer
	for _, h := range hosts[:len(hosts)-1] {
		p, err := pircli.Join(h, pir, "pir-"+h.Name, args...)
		if err != nil {
			return nil, err
		}
		members = append(members, p)
	}
	for _, p := range members {
		if _, _, err := lastSeen(ctx, members, nil, p.ID, pircli.Joined); err != nil {
			return nil, fmt.Errorf("the first members meeting: %w", err)
		}
	}
	progress("  %d members meet", len(members))

	// Join: a new member; both directions from its process start.
	before := marks(members)
	h := hosts[len(hosts)-1]
	newcomer, err := pircli.Join(h, pir, "pir-"+h.Name, args...)
	if err != nil {
		return nil, err
	}
	start := newcomer.Started()
	var last pircli.Event
	for _, p := range members {
		e, err := newcomer.WaitEvent(ctx, 0, pircli.Is(pircli.Joined, p.ID))
		if err != nil {
			return nil, err
		}
		if e.Line.At.After(last.Line.At) {
			last = e
		}
	}
	samples = append(samples, sample{Run: run, Name: mNewSeesAll, Read: last.Line.At.Sub(start), Event: last.Time.Sub(start)})
	read, event, err := lastSeen(ctx, members, before, newcomer.ID, pircli.Joined)
	if err != nil {
		return nil, err
	}
	samples = append(samples, sample{Run: run, Name: mAllSeeNew, Read: read.Sub(start), Event: event.Sub(start)})
	members = append(members, newcomer)
	progress("  joined")

	// Removals: members[0] says goodbye, members[1] crashes, members[2]
	// loses its link; the others observe.
	for _, m := range []struct {
		name   string
		act    func(*pircli.Peer) error
		reason []string
	}{
		{mGoodbye, func(p *pircli.Peer) error { return p.Interrupt() }, []string{pircli.Goodbye}},
		{mCrash, func(p *pircli.Peer) error { return p.Kill() }, nil},
		{mLinkDown, func(p *pircli.Peer) error { return l.LinkDown(p.Host()) }, nil},
	} {
		// Start at a random point of the members' probe cycles: right
		// after the join they all probe in step with the newcomer, which
		// would make every crash take the longest (three whole intervals).
		select {
		case <-time.After(rand.N(phaseSpread)):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		gone, observers := members[0], members[1:]
		before := marks(observers)
		start := time.Now()
		if err := m.act(gone); err != nil {
			return nil, err
		}
		reasons := make(map[string]int)
		read, event, err := lastSeen(ctx, observers, before, gone.ID, pircli.Left, m.reason...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		for _, o := range observers {
			e, _ := o.WaitEvent(ctx, before[o], pircli.Is(pircli.Left, gone.ID))
			reasons[e.Reason]++
		}
		samples = append(samples, sample{Run: run, Name: m.name, Read: read.Sub(start), Event: event.Sub(start), Reasons: reasons})
		members = observers
		progress("  %s: %v", m.name, read.Sub(start).Round(time.Millisecond))
	}
	return samples, nil
}

func marks(peers []*pircli.Peer) map[*pircli.Peer]int {
	m := make(map[*pircli.Peer]int)
	for _, p := range peers {
		m[p] = p.Len()
	}
	return m
}

// lastSeen waits until every observer but id itself has printed an event of
// type typ about id (with one of reasons, if given) after its mark, and
// returns when the last such line was read and its time field.
func lastSeen(ctx context.Context, observers []*pircli.Peer, from map[*pircli.Peer]int, id, typ string, reasons ...string) (read, event time.Time, err error) {
	for _, o := range observers {
		if o.ID == id {
			continue
		}
		e, err := o.WaitEvent(ctx, from[o], pircli.Is(typ, id, reasons...))
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		if e.Line.At.After(read) {
			read, event = e.Line.At, e.Time
		}
	}
	return read, event, nil
}

// summary is the statistics of one measurement over the runs.
type summary struct {
	Name        string         `json:"name"`
	What        string         `json:"what"`
	N           int            `json:"n"`
	Median      time.Duration  `json:"median_ns"`
	P90         time.Duration  `json:"p90_ns"`
	Max         time.Duration  `json:"max_ns"`
	EventMedian time.Duration  `json:"event_median_ns"`
	Reasons     map[string]int `json:"reasons,omitempty"`
}

func summarize(samples []sample) []summary {
	var out []summary
	for _, m := range measurements {
		s := summary{Name: m.name, What: m.what}
		var read, event []time.Duration
		for _, x := range samples {
			if x.Name != m.name {
				continue
			}
			read, event = append(read, x.Read), append(event, x.Event)
			for r, n := range x.Reasons {
				if s.Reasons == nil {
					s.Reasons = make(map[string]int)
				}
				s.Reasons[r] += n
			}
		}
		s.N = len(read)
		s.Median, s.P90, s.Max = quantile(read, 0.5), quantile(read, 0.9), quantile(read, 1)
		s.EventMedian = quantile(event, 0.5)
		out = append(out, s)
	}
	return out
}

// quantile returns the q-quantile of d by the nearest-rank method: the
// smallest value with at least q of the values at or below it.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Sorted(slices.Values(d))
	rank := int(math.Ceil(q * float64(len(d))))
	return d[min(max(rank, 1), len(d))-1]
}
