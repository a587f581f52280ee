package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/internal/nslan"
	"github.com/pirlan/pir/internal/nslan/pircli"
)

// Bounds on the waits: generous, because a test fails only when one passes.
// pir needs about a second to meet its peers and about 6 s (three failed
// probes, 2 s apart) to remove a silent one.
const (
	meetTimeout   = 20 * time.Second
	removeTimeout = 40 * time.Second
	exitTimeout   = 10 * time.Second
)

// pirPath and agentPath are the pir and pir-agent binaries TestMain
// built; skipReason says why there are none.
var pirPath, agentPath, skipReason string

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helper(os.Args[1:]))
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if ok, reason := nslan.Available(); !ok {
		skipReason = reason
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "pir-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := pircli.ModuleRoot(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if pirPath, err = pircli.Build(ctx, root, dir, raceEnabled); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if agentPath, err = pircli.BuildAgent(ctx, root, dir, raceEnabled); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: goroutines left running:", err)
			code = 1
		}
	}
	return code
}

// newLab makes a lab for t, or skips t if none can be made here.
func newLab(t *testing.T, cfg nslan.Config) *nslan.Lab {
	t.Helper()
	if pirPath == "" {
		t.Skip("e2e: no network lab here: " + skipReason)
	}
	cfg.Logf = t.Logf
	l, err := nslan.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, l.Close()) })
	return l
}

// peerID is the ID the tests give the pir member on host h.
func peerID(h *nslan.Host) string { return "pir-" + h.Name }

// join starts "pir join" on h with the ID peerID(h). When the test ends, a
// peer still running is interrupted and must exit cleanly.
func join(t *testing.T, h *nslan.Host, args ...string) *pircli.Peer {
	t.Helper()
	p, err := pircli.Join(h, pirPath, peerID(h), args...)
	require.NoError(t, err)
	t.Cleanup(func() { stop(t, p) })
	return p
}

// watch starts "pir watch" on h, stopped like join's.
func watch(t *testing.T, h *nslan.Host, args ...string) *pircli.Peer {
	t.Helper()
	p, err := pircli.Watch(h, pirPath, args...)
	require.NoError(t, err)
	t.Cleanup(func() { stop(t, p) })
	return p
}

// stop interrupts p unless it has exited, and checks that it exits with
// status 0, printed only well-formed events and reported no data race.
func stop(t *testing.T, p *pircli.Peer) {
	select {
	case <-p.Done():
	default:
		// The process may have exited an instant ago, before Done says so.
		if err := p.Interrupt(); !errors.Is(err, os.ErrProcessDone) {
			assert.NoError(t, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
		defer cancel()
		assert.NoError(t, p.Wait(ctx), "%s exits cleanly on SIGINT; stderr:\n%s", p.Name(), p.Stderr())
	}
	assert.NoError(t, p.CheckStderr())
	_, err := p.Events()
	assert.NoError(t, err, "every line pir join/watch -json prints is an event")
}

// marks records where each peer's output stands, so that a wait can look
// only at what comes after an action.
type marks map[*pircli.Peer]int

func mark(peers ...*pircli.Peer) marks {
	m := make(marks)
	for _, p := range peers {
		m[p] = p.Len()
	}
	return m
}

// requireSeen waits until every observer but the member id itself has
// printed an event of type typ about id (with one of reasons, if given),
// after its mark in from (nil: from the start). It returns the events.
func requireSeen(t *testing.T, ctx context.Context, observers []*pircli.Peer, from marks, id, typ string, reasons ...string) map[*pircli.Peer]pircli.Event {
	t.Helper()
	got := make(map[*pircli.Peer]pircli.Event)
	for _, o := range observers {
		if o.ID == id {
			continue
		}
		e, err := o.WaitEvent(ctx, from[o], pircli.Is(typ, id, reasons...))
		require.NoError(t, err, "%s never printed %s %s %v; its stderr:\n%s", o.Name(), typ, id, reasons, o.Stderr())
		got[o] = e
	}
	return got
}

// requireMesh waits until every observer has seen every member in peers
// join, and returns what each saw: seen[observer][member ID].
func requireMesh(t *testing.T, observers, peers []*pircli.Peer, from marks) map[*pircli.Peer]map[string]pircli.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), meetTimeout)
	defer cancel()
	seen := make(map[*pircli.Peer]map[string]pircli.Event)
	for _, o := range observers {
		seen[o] = make(map[string]pircli.Event)
	}
	for _, p := range peers {
		for o, e := range requireSeen(t, ctx, observers, from, p.ID, pircli.Joined) {
			seen[o][p.ID] = e
		}
	}
	return seen
}

// requireOnlyMembers checks that no observer ever printed an event about an
// ID outside ids.
func requireOnlyMembers(t *testing.T, observers []*pircli.Peer, ids ...string) {
	t.Helper()
	for _, o := range observers {
		events, err := o.Events()
		require.NoError(t, err)
		for _, e := range events {
			assert.True(t, slices.Contains(ids, e.ID), "%s printed an event about %q, not one of %v: %s", o.Name(), e.ID, ids, e.Line.Text)
		}
	}
}

// hostOf parses the host of a URI as an address (zone kept).
func hostOf(t *testing.T, uri string) netip.Addr {
	t.Helper()
	u, err := url.Parse(uri)
	require.NoError(t, err)
	a, err := netip.ParseAddr(u.Hostname())
	require.NoError(t, err, "URI %s", uri)
	return a
}

func ids(peers []*pircli.Peer) []string {
	var s []string
	for _, p := range peers {
		s = append(s, p.ID)
	}
	return s
}
