package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNeighNeeds(t *testing.T) {
	for _, n := range []int{4, 33, 100, 1000} {
		need := neighNeeds(n)
		// Every host holds an entry for every other: one address for
		// IPv4, two for IPv6.
		assert.Greater(t, need["net/ipv4/neigh/default/gc_thresh3"], n*(n-1), n)
		assert.Greater(t, need["net/ipv6/neigh/default/gc_thresh3"], 2*n*(n-1), n)
		assert.Greater(t, need["net/ipv4/neigh/default/gc_thresh2"], n*(n-1), n)
		assert.Greater(t, need["net/ipv4/neigh/default/gc_thresh1"], n*(n-1), n)
		// Room for each host's multicast entries and more: no
		// collection while the lab is what it is.
		assert.GreaterOrEqual(t, need["net/ipv4/neigh/default/gc_thresh1"], 2*n*(n-1), n)
		assert.GreaterOrEqual(t, need["net/ipv4/neigh/default/gc_thresh2"], 2*n*(n-1), n)
		assert.GreaterOrEqual(t, need["net/ipv6/neigh/default/gc_thresh1"], 4*n*(n-1), n)
		if n < 20 {
			assert.Less(t, need["net/ipv6/neigh/default/gc_thresh3"], 1024, "the default does for a small lab")
		}
		for _, v := range []string{"4", "6"} {
			dir := "net/ipv" + v + "/neigh/default/"
			assert.Less(t, need[dir+"gc_thresh2"], need[dir+"gc_thresh3"])
		}
	}
}

func TestRaiseNeighLimits(t *testing.T) {
	sys := t.TempDir()
	set := func(p string, v int) {
		path := filepath.Join(sys, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(strconv.Itoa(v)+"\n"), 0o644))
	}
	get := func(p string) int {
		b, err := os.ReadFile(filepath.Join(sys, p))
		require.NoError(t, err)
		v, err := strconv.Atoi(strings.TrimSpace(string(b)))
		require.NoError(t, err)
		return v
	}
	// The kernel's defaults, but a gc_thresh3 for IPv4 already large.
	set(neighPaths[0], 512)
	set(neighPaths[1], 1<<20)
	set(neighPaths[2], 512)
	set(neighPaths[3], 1024)
	set(neighPaths[4], 128)
	set(neighPaths[5], 128)

	changed, restore, err := raiseNeighLimits(sys, 100)
	require.NoError(t, err)
	require.Len(t, changed, 5, "all but the limit already large enough")
	need := neighNeeds(100)
	assert.Equal(t, need[neighPaths[4]], get(neighPaths[4]), "no collection below the lab's entries")
	assert.Equal(t, need[neighPaths[0]], get(neighPaths[0]))
	assert.Equal(t, 1<<20, get(neighPaths[1]), "never lowered")
	assert.Equal(t, need[neighPaths[3]], get(neighPaths[3]))
	assert.Equal(t, "net.ipv6.neigh.default.gc_thresh3", sysctlName(changed[2].path))

	set(neighPaths[2], 7) // someone else's change: kept
	require.NoError(t, restore())
	assert.Equal(t, 512, get(neighPaths[0]))
	assert.Equal(t, 1<<20, get(neighPaths[1]))
	assert.Equal(t, 7, get(neighPaths[2]))
	assert.Equal(t, 1024, get(neighPaths[3]))
	assert.Equal(t, 128, get(neighPaths[4]))

	// A small lab: the kernel's defaults are enough.
	changed, _, err = raiseNeighLimits(sys, 4)
	require.NoError(t, err)
	require.Len(t, changed, 1, "only the one set to 7 is below what 4 hosts need")
	assert.Equal(t, filepath.Join(sys, neighPaths[2]), changed[0].path)

	_, restore, err = raiseNeighLimits(filepath.Join(sys, "missing"), 10)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "net.ipv4.neigh.default.gc_thresh2")
	require.NoError(t, restore())
}
