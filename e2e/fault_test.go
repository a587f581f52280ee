package e2e

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/nslan"
	"github.com/pirlan/pir/internal/nslan/pircli"
)

// soakTime is how long TestLossNoFalseRemovals keeps the loss on:
// PIR_SOAK (a Go duration) if set, else 3 minutes, or 20 s with -short.
func soakTime(t *testing.T) time.Duration {
	if s := os.Getenv("PIR_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		require.NoError(t, err, "PIR_SOAK")
		return d
	}
	if testing.Short() {
		return 20 * time.Second
	}
	return 3 * time.Minute
}

// requireLoss skips t unless the lab can drop frames.
func requireLoss(t *testing.T) {
	if ok, reason := nslan.AvailableLoss(); !ok && pirPath != "" {
		t.Skip("e2e: no loss or partitions in the lab: " + reason)
	}
}

// envInt is the integer in the environment variable name, or def.
func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	require.NoError(t, err, name)
	return n
}

// TestLossNoFalseRemovals runs 10 members, default settings, while every
// frame between two hosts has a 30 % chance of being lost (each host's
// port drops 30 % of what it sends), and checks that nobody removes
// anybody: no false removals, and all still see all. PIR_SOAK_HOSTS and
// PIR_SOAK_LOSS (a percentage) change the numbers.
//
// The hosts keep the kernel's neighbour discovery defaults (ARP and IPv6 ND
// retry 3 times, a second apart). Over a link losing 30 % each way that
// fails 13 % of the time, and the kernel then drops every unicast to that
// neighbour until it resolves again: probes fail while announcements,
// multicast, still arrive. pir must see through that by itself.
func TestLossNoFalseRemovals(t *testing.T) {
	hosts, loss := envInt(t, "PIR_SOAK_HOSTS", 10), envInt(t, "PIR_SOAK_LOSS", 30)
	l := newLab(t, nslan.Config{Hosts: hosts})
	requireLoss(t)
	var members []*pircli.Peer
	for _, h := range l.Hosts() {
		members = append(members, join(t, h))
	}
	requireMesh(t, members, members, nil)

	from := mark(members...)
	for _, h := range l.Hosts() {
		require.NoError(t, l.SetSendLoss(h, loss))
	}
	soak := soakTime(t)
	t.Logf("%d%% loss on every host's sends for %v", loss, soak)
	select {
	case <-time.After(soak):
	case <-t.Context().Done():
	}
	for _, h := range l.Hosts() {
		require.NoError(t, l.ClearLoss(h))
	}

	removals, healthChanges := 0, 0
	for _, m := range members {
		events, err := m.Events()
		require.NoError(t, err)
		for _, e := range events {
			if e.Index < from[m] {
				continue
			}
			switch e.Event {
			case pircli.Left:
				removals++
				t.Errorf("%s removed %s (%s) under loss", m.Name(), e.ID, e.Reason)
			case pircli.Health:
				healthChanges++
			}
		}
	}
	t.Logf("figures: %d members, %v at %d%% loss: %d false removals, %d health changes", len(members), soak, loss, removals, healthChanges)
	assert.Zero(t, removals)
	requireOnlyMembers(t, members, ids(members)...)
}

// TestPartitionHeals cuts a 6-host LAN in two: each side removes the other,
// and after the cut heals everyone finds everyone again.
func TestPartitionHeals(t *testing.T) {
	l := newLab(t, nslan.Config{Hosts: 6})
	requireLoss(t)
	hosts := l.Hosts()
	var members []*pircli.Peer
	for _, h := range hosts {
		members = append(members, join(t, h))
	}
	requireMesh(t, members, members, nil)

	a, b := members[:3], members[3:]
	from := mark(members...)
	require.NoError(t, l.Partition(hosts[:3], hosts[3:]))
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	for _, p := range b {
		requireSeen(t, ctx, a, from, p.ID, pircli.Left, pircli.Failed, pircli.Expired)
	}
	for _, p := range a {
		requireSeen(t, ctx, b, from, p.ID, pircli.Left, pircli.Failed, pircli.Expired)
	}

	from = mark(members...)
	healed := time.Now()
	require.NoError(t, l.Heal())
	var last time.Time
	for _, seen := range requireCross(t, a, b, from) {
		if seen.After(last) {
			last = seen
		}
	}
	t.Logf("figures: after the partition healed, every member saw every other again in %v", last.Sub(healed).Round(time.Millisecond))
	requireOnlyMembers(t, members, ids(members)...)
}

// requireCross waits until each member of a has seen each of b join and
// the other way round, after from; it returns when each sighting was read.
func requireCross(t *testing.T, a, b []*pircli.Peer, from marks) []time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), meetTimeout)
	defer cancel()
	var at []time.Time
	for _, side := range [][2][]*pircli.Peer{{a, b}, {b, a}} {
		for _, p := range side[1] {
			for _, e := range requireSeen(t, ctx, side[0], from, p.ID, pircli.Joined) {
				at = append(at, e.Line.At)
			}
		}
	}
	return slices.Clip(at)
}
