package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/nslan"
	"github.com/pirlan/pir/internal/nslan/pircli"
)

// TestMemberlistRun makes one run of the memberlist contender on a lab of
// 6 hosts, as -contender memberlist does: every measure is taken, and the
// observers give memberlist's reasons (goodbye for the leave, failed for
// the crash and the pulled cable). Six, because memberlist waits for two
// other members to confirm a suspicion before its shortest timeout (4 s),
// and counts the members gone before in the group's size: with 4 hosts,
// the last observer waits for the longest timeout, 24 s.
func TestMemberlistRun(t *testing.T) {
	if ok, reason := nslan.Available(); !ok {
		t.Skip("no network lab here: " + reason)
	}
	const hosts = 6
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	shim, err := buildShim(ctx, t.TempDir())
	require.NoError(t, err)
	config, err := shimConfig(ctx, shim)
	require.NoError(t, err)
	assert.Equal(t, "1s", config["ProbeInterval"], "DefaultLANConfig")

	r, err := oneRun(ctx, options{steady: time.Second}, memberlistSystem(shim), hosts, 1, t.Logf)
	require.NoError(t, err)

	require.Len(t, r.samples, len(measurements))
	reasons := make(map[string]map[string]int)
	for i, s := range r.samples {
		assert.Equal(t, measurements[i].name, s.Name)
		assert.Positive(t, s.Read, s.Name)
		assert.LessOrEqual(t, s.Event, s.Read, "%s: noticed before printed", s.Name)
		reasons[s.Name] = s.Reasons
	}
	// 5 observe the goodbye, 4 the crash, 3 the pulled cable.
	assert.Equal(t, map[string]int{pircli.Goodbye: hosts - 1}, reasons[mGoodbye])
	assert.Equal(t, map[string]int{pircli.Failed: hosts - 2}, reasons[mCrash])
	assert.Equal(t, map[string]int{pircli.Failed: hosts - 3}, reasons[mLinkDown])

	require.Len(t, r.hosts, hosts)
	for _, h := range r.hosts {
		assert.Positive(t, h.TxPackets+h.RxPackets, h.Host)
		assert.Positive(t, h.RSS, h.Host)
	}
	assert.Zero(t, r.steadyLeft)
}
