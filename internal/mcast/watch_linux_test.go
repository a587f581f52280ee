package mcast

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pirlan/pir/internal/netlab"
)

// TestWatcherOverflow: when the socket's queue overflowed (notices were
// lost, and the read fails with ENOBUFS), the Watcher signals a change and
// goes on watching.
func TestWatcherOverflow(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	fd, err := subscribe()
	require.NoError(t, err)
	started := false
	t.Cleanup(func() {
		if !started {
			_ = unix.Close(fd)
		}
	})
	// The smallest queue the kernel allows (a few kB): a few link notices
	// fill it while nothing reads.
	require.NoError(t, unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 0))
	for range 10 {
		if out, err := netlab.IP("link", "add", "pirw0", "type", "veth", "peer", "name", "pirw1"); err != nil {
			t.Skipf("cannot make a veth pair in the namespace: %v: %s", err, out)
		}
		netlab.MustIP(t, "link", "del", "pirw0")
	}
	require.Positive(t, netlinkDrops(t, fd), "the queue did not overflow")

	w := start(fd)
	started = true
	t.Cleanup(func() { _ = w.Close() })
	noticed(t, w, "the overflow")
	drain(w)
	if out, err := netlab.IP("link", "add", "pirw0", "type", "veth", "peer", "name", "pirw1"); err != nil {
		t.Fatalf("making a veth pair: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = netlab.IP("link", "del", "pirw0") })
	noticed(t, w, "a new link after the overflow")
}

// netlinkDrops reads the count of notices the kernel dropped for the
// netlink socket fd, from /proc/net/netlink (its Drops column).
func netlinkDrops(t *testing.T, fd int) int {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Fstat(fd, &st))
	b, err := os.ReadFile("/proc/net/netlink")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	head := strings.Fields(lines[0])
	drops, inode := -1, -1
	for i, h := range head {
		switch h {
		case "Drops":
			drops = i
		case "Inode":
			inode = i
		}
	}
	require.True(t, drops >= 0 && inode >= 0, "no Drops or Inode column in %q", lines[0])
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != len(head) || f[inode] != strconv.FormatUint(st.Ino, 10) {
			continue
		}
		n, err := strconv.Atoi(f[drops])
		require.NoError(t, err)
		return n
	}
	t.Fatalf("socket inode %d not in /proc/net/netlink", st.Ino)
	return 0
}
