package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pirlan/pir/internal/nslan"
	"github.com/pirlan/pir/internal/nslan/pircli"
)

// phaseSpread is the longest random wait before a removal: pir's default
// probe interval.
const phaseSpread = 2 * time.Second

// defaultSettle is the default wait (-settle) between all members seeing
// each other and the steady-state window: one probe interval, so that the
// probes that followed the joins are over.
const defaultSettle = 2 * time.Second

// waitTimeout bounds each wait of a run of n hosts: far beyond what pir
// needs, and more for more hosts, which share the machine's cores.
func waitTimeout(n int) time.Duration {
	return 60*time.Second + time.Duration(n)*300*time.Millisecond
}

// runResult is what one run measured.
type runResult struct {
	samples []sample
	hosts   []hostSample
	// steadyLeft counts the left lines printed during the steady-state
	// window: members wrongly removed while nothing happened.
	steadyLeft int
}

// system is what a run starts on every host: pir, or a contender behind
// pir join's command-line contract (tools/mlshim for memberlist).
type system struct {
	// name is "pir" or the contender's name, as results.json records it.
	name string
	// bin is the program run as "bin join -json -iface eth0 -id ID args...".
	bin string
	// idPrefix starts every member's ID, followed by its host's name.
	idPrefix string
	// args returns the flags added for the member on host h of lab l.
	args func(l *nslan.Lab, h *nslan.Host) []string
	// meetSlack lengthens the wait for the first members to see each
	// other, which nothing measures.
	meetSlack time.Duration
}

// pirSystem is pir, with the join flags o adds.
func pirSystem(o options, pir string) system {
	args := o.joinArgs()
	return system{name: "pir", bin: pir, idPrefix: "pir-", args: func(*nslan.Lab, *nslan.Host) []string { return args }}
}

// memberlistSystem is hashicorp/memberlist through tools/mlshim at shim:
// every member but the first host's joins through the first host's.
func memberlistSystem(shim string) system {
	// A memberlist member that misses the gossip of a join learns of it at
	// its next push-pull: every 30 s, scaled up with the group's size
	// (90 s at 100 members), so at 100 hosts the first members' meeting
	// can outlast waitTimeout.
	return system{name: contenderMemberlist, bin: shim, idPrefix: "ml-", meetSlack: 3 * time.Minute, args: func(l *nslan.Lab, h *nslan.Host) []string {
		seed := l.Host(0)
		if h == seed {
			return nil
		}
		return []string{"-seed", seedAddr(seed)}
	}}
}

// seedAddr is the address a contender member joins through on host h.
func seedAddr(h *nslan.Host) string {
	if h.IPv4.IsValid() {
		return h.IPv4.String()
	}
	return h.IPv6.String()
}

// oneRun makes a lab of n hosts, starts sys's members and makes the
// measurements. When it fails half-way it returns what it measured so far
// with the error.
func oneRun(ctx context.Context, o options, sys system, n, run int, progress func(string, ...any)) (r runResult, err error) {
	began := time.Now()
	l, err := nslan.New(nslan.Config{Hosts: n})
	if err != nil {
		return r, err
	}
	defer func() {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	progress("  lab of %d hosts made in %v", n, time.Since(began).Round(time.Millisecond))
	timeout := waitTimeout(n)
	hosts := l.Hosts()
	join := func(h *nslan.Host) (*pircli.Peer, error) {
		return pircli.Join(h, sys.bin, sys.idPrefix+h.Name, sys.args(l, h)...)
	}
	var started []*pircli.Peer
	defer func() {
		if err != nil && len(started) > 0 {
			prefix := fmt.Sprintf("pirbench-%dhosts-run%d-", n, run)
			if sys.name != "pir" {
				prefix = fmt.Sprintf("pirbench-%s-%dhosts-run%d-", sys.name, n, run)
			}
			dir, lerr := os.MkdirTemp("", prefix)
			if lerr == nil {
				lerr = writeLogs(dir, started)
			}
			if lerr != nil {
				err = errors.Join(err, lerr)
			} else {
				err = fmt.Errorf("%w (each member's output is in %s)", err, dir)
			}
		}
	}()

	// The first n-1 members, one at a time: each starts once the one
	// before it has seen all the others, which paces the starts to what
	// the machine can take.
	began = time.Now()
	var members []*pircli.Peer
	for _, h := range hosts[:n-1] {
		p, err := join(h)
		if err != nil {
			return r, err
		}
		started = append(started, p)
		if _, err := waitAll(ctx, timeout, p, 0, pircli.Joined, ids(members)); err != nil {
			return r, fmt.Errorf("starting the first members: %w", err)
		}
		members = append(members, p)
	}
	for _, p := range members {
		if _, err := waitAll(ctx, timeout+sys.meetSlack, p, 0, pircli.Joined, ids(members)); err != nil {
			return r, fmt.Errorf("the first members meeting: %w", err)
		}
	}
	progress("  %d members meet, in %v", len(members), time.Since(began).Round(time.Millisecond))

	// Join: a new member; both directions from its process start.
	before := marks(members)
	h := hosts[n-1]
	newcomer, err := join(h)
	if err != nil {
		return r, err
	}
	started = append(started, newcomer)
	start := newcomer.Started()
	last, err := waitAll(ctx, timeout, newcomer, 0, pircli.Joined, ids(members))
	if err != nil {
		return r, fmt.Errorf("%s: %w", mNewSeesAll, err)
	}
	r.samples = append(r.samples, sample{Hosts: n, Run: run, Name: mNewSeesAll, Read: last.Line.At.Sub(start), Event: last.Time.Sub(start)})
	read, event, err := lastSeen(ctx, timeout, members, before, newcomer.ID, pircli.Joined)
	if err != nil {
		return r, fmt.Errorf("%s: %w", mAllSeeNew, err)
	}
	r.samples = append(r.samples, sample{Hosts: n, Run: run, Name: mAllSeeNew, Read: read.Sub(start), Event: event.Sub(start)})
	members = append(members, newcomer)
	progress("  joined: new sees all %v, all see new %v", r.samples[0].Read.Round(time.Millisecond), r.samples[1].Read.Round(time.Millisecond))

	// Steady state: all n members see each other now.
	if o.steady > 0 {
		if err := sleep(ctx, o.settle); err != nil {
			return r, err
		}
		hs, left, err := steadyState(ctx, l, members, o.steady)
		if err != nil {
			return r, fmt.Errorf("steady state: %w", err)
		}
		for i := range hs {
			hs[i].Hosts, hs[i].Run = n, run
		}
		r.hosts, r.steadyLeft = hs, left
		progress("  steady state over %v measured", o.steady)
	}

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
		if err := sleep(ctx, rand.N(phaseSpread)); err != nil {
			return r, err
		}
		gone, observers := members[0], members[1:]
		before := marks(observers)
		start := time.Now()
		if err := m.act(gone); err != nil {
			return r, err
		}
		read, event, err := lastSeen(ctx, timeout, observers, before, gone.ID, pircli.Left, m.reason...)
		if err != nil {
			return r, fmt.Errorf("%s: %w", m.name, err)
		}
		reasons := make(map[string]int)
		for _, o := range observers {
			e, _ := o.WaitEvent(ctx, before[o], pircli.Is(pircli.Left, gone.ID))
			reasons[e.Reason]++
		}
		r.samples = append(r.samples, sample{Hosts: n, Run: run, Name: m.name, Read: read.Sub(start), Event: event.Sub(start), Reasons: reasons})
		members = observers
		progress("  %s: %v", m.name, read.Sub(start).Round(time.Millisecond))
	}
	return r, nil
}

// steadyState measures each member's traffic, CPU and memory over a window
// of d, and counts the left lines printed meanwhile.
func steadyState(ctx context.Context, l *nslan.Lab, members []*pircli.Peer, d time.Duration) ([]hostSample, int, error) {
	from := marks(members)
	read := func() ([]nslan.Counters, []nslan.ProcStats, error) {
		c, err := l.AllCounters()
		if err != nil {
			return nil, nil, err
		}
		ps := make([]nslan.ProcStats, len(members))
		for i, p := range members {
			if ps[i], err = p.Stats(); err != nil {
				return nil, nil, err
			}
		}
		return c, ps, nil
	}
	c0, p0, err := read()
	if err != nil {
		return nil, 0, err
	}
	if err := sleep(ctx, d); err != nil {
		return nil, 0, err
	}
	c1, p1, err := read()
	if err != nil {
		return nil, 0, err
	}
	var out []hostSample
	for i, p := range members {
		h := p.Host().Index
		dc, secs := c1[h].Sub(c0[h]), c1[h].At.Sub(c0[h].At).Seconds()
		cpu := (p1[i].CPU - p0[i].CPU).Seconds() / p1[i].At.Sub(p0[i].At).Seconds()
		out = append(out, hostSample{
			Host:      p.Host().Name,
			TxPackets: float64(dc.TxPackets) / secs,
			RxPackets: float64(dc.RxPackets) / secs,
			TxBytes:   float64(dc.TxBytes) / secs,
			RxBytes:   float64(dc.RxBytes) / secs,
			CPU:       100 * cpu,
			RSS:       p1[i].RSS,
		})
	}
	left := 0
	for _, p := range members {
		for _, line := range p.Lines()[from[p]:] {
			if e, err := pircli.Parse(line); err == nil && e.Event == pircli.Left {
				left++
			}
		}
	}
	return out, left, nil
}

// writeLogs writes each member's output into dir, one file per host: its
// stdout lines with the time pirbench read them, then the end of its
// stderr (where pir join -log writes).
func writeLogs(dir string, peers []*pircli.Peer) error {
	for _, p := range peers {
		var b strings.Builder
		fmt.Fprintf(&b, "# %s, started %s\n# stdout:\n", p.Name(), p.Started().Format(time.RFC3339Nano))
		for _, l := range p.Lines() {
			fmt.Fprintf(&b, "%s %s\n", l.At.Format("15:04:05.000000"), l.Text)
		}
		fmt.Fprintf(&b, "# stderr (the last 64 KiB):\n%s", p.Stderr())
		if err := os.WriteFile(filepath.Join(dir, p.Host().Name+".log"), []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("writing the members' logs: %w", err)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func ids(peers []*pircli.Peer) []string {
	out := make([]string, len(peers))
	for i, p := range peers {
		out[i] = p.ID
	}
	return out
}

func marks(peers []*pircli.Peer) map[*pircli.Peer]int {
	m := make(map[*pircli.Peer]int)
	for _, p := range peers {
		m[p] = p.Len()
	}
	return m
}

// waitAll waits, for at most timeout, until p has printed an event of type
// typ about every one of ids but itself, on lines from index from on, and
// returns the last of those events.
func waitAll(ctx context.Context, timeout time.Duration, p *pircli.Peer, from int, typ string, ids []string) (pircli.Event, error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id != p.ID {
			want[id] = true
		}
	}
	var last pircli.Event
	if len(want) == 0 {
		return last, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var bad error
	_, _, err := p.WaitLine(ctx, from, func(l nslan.Line) bool {
		e, err := pircli.Parse(l)
		if err != nil {
			bad = err
			return true
		}
		if e.Event == typ && want[e.ID] {
			delete(want, e.ID)
			last = e
		}
		return len(want) == 0
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		missing := slices.Sorted(maps.Keys(want))
		if len(missing) > 5 {
			missing = append(missing[:5], "...")
		}
		return last, fmt.Errorf("%s: %d %s lines missing, about %s: %w", p.Name(), len(want), typ, strings.Join(missing, ", "), err)
	}
	return last, nil
}

// lastSeen waits, for at most timeout, until every observer but id itself
// has printed an event of type typ about id (with one of reasons, if
// given) after its mark, and returns when the last such line was read and
// its time field.
func lastSeen(ctx context.Context, timeout time.Duration, observers []*pircli.Peer, from map[*pircli.Peer]int, id, typ string, reasons ...string) (read, event time.Time, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
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
