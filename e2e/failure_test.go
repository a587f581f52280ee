package e2e

import (
	"context"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/nslan"
	"github.com/pirlan/pir/internal/nslan/pircli"
)

// TestCrashAndGoodbye checks that the members and a watcher remove a
// member killed with SIGKILL (it says nothing: its probes fail, or it
// stops announcing) and one interrupted (it says goodbye, which they act
// on at once).
func TestCrashAndGoodbye(t *testing.T) {
	l := newLab(t, nslan.Config{Hosts: lanHosts})
	hosts := l.Hosts()
	var members []*pircli.Peer
	for _, h := range hosts[:4] {
		members = append(members, join(t, h))
	}
	w := watch(t, hosts[4])
	requireMesh(t, slices.Concat(members, []*pircli.Peer{w}), members, nil)

	crashed := members[3]
	from := mark(members[:3]...)
	from[w] = w.Len()
	require.NoError(t, crashed.Kill())
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	requireSeen(t, ctx, slices.Concat(members[:3], []*pircli.Peer{w}), from, crashed.ID, pircli.Left, pircli.Failed, pircli.Expired)

	leaver := members[2]
	from = mark(members[:2]...)
	from[w] = w.Len()
	require.NoError(t, leaver.Interrupt())
	requireSeen(t, ctx, slices.Concat(members[:2], []*pircli.Peer{w}), from, leaver.ID, pircli.Left, pircli.Goodbye)
	require.NoError(t, leaver.Wait(ctx), "pir join exits cleanly after its goodbye; stderr:\n%s", leaver.Stderr())

	requireOnlyMembers(t, slices.Concat(members, []*pircli.Peer{w}), ids(members)...)
}

// TestLinkDown pulls a host's cable at the switch: the others remove its
// member (its probes time out and it stops announcing: whichever pir
// notices first gives the reason, failed or expired), it removes them, and
// when the cable is back they all find each other again.
func TestLinkDown(t *testing.T) {
	l := newLab(t, nslan.Config{Hosts: lanHosts})
	var members []*pircli.Peer
	for _, h := range l.Hosts() {
		members = append(members, join(t, h))
	}
	requireMesh(t, members, members, nil)

	cut, others := members[len(members)-1], members[:len(members)-1]
	from := mark(members...)
	require.NoError(t, l.LinkDown(cut.Host()))
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	requireSeen(t, ctx, others, from, cut.ID, pircli.Left, pircli.Failed, pircli.Expired)
	for _, o := range others {
		requireSeen(t, ctx, []*pircli.Peer{cut}, from, o.ID, pircli.Left, pircli.Failed, pircli.Expired)
	}

	from = mark(members...)
	require.NoError(t, l.LinkUp(cut.Host()))
	requireMesh(t, others, []*pircli.Peer{cut}, from)
	requireMesh(t, []*pircli.Peer{cut}, others, from)
}

// TestRepeatedInterrupts sends a member SIGINT again and again, as an
// impatient operator or a supervisor might, until it exits: the first
// starts its goodbye, the others change nothing, and it exits with status
// 0, not killed by a signal that came while it was exiting.
func TestRepeatedInterrupts(t *testing.T) {
	l := newLab(t, nslan.Config{Hosts: 2})
	hosts := l.Hosts()
	a, b := join(t, hosts[0]), join(t, hosts[1])
	requireMesh(t, []*pircli.Peer{a, b}, []*pircli.Peer{a, b}, nil)

	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	from := mark(b)
	for done := false; !done; {
		select {
		case <-a.Done():
			done = true
		case <-ctx.Done():
			t.Fatal("pir join did not exit")
		default:
			if err := a.Interrupt(); err != nil {
				require.ErrorIs(t, err, os.ErrProcessDone)
			}
			runtime.Gosched()
		}
	}
	require.NoError(t, a.Wait(ctx), "pir join exits with status 0; stderr:\n%s", a.Stderr())
	requireSeen(t, ctx, []*pircli.Peer{b}, from, a.ID, pircli.Left, pircli.Goodbye)
}
