package healthcheck_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/healthcheck"
)

// A probe ends its connection with a reset, so that neither side keeps a
// socket in TIME_WAIT for it: the server closes first, and would otherwise
// hold one for a minute per probe it answered.
func TestTCPProbeLeavesNoTimeWait(t *testing.T) {
	forEachLoopback(t, func(t *testing.T, host string) {
		srv := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
		require.NoError(t, srv.Start(net.JoinHostPort(host, "0")))
		t.Cleanup(func() { srv.Close() })
		u := srv.URI()
		port, err := strconv.ParseUint(u.Port(), 10, 16)
		require.NoError(t, err)
		p := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: longTimeout})
		// The listener's port may be one that an earlier connection (this
		// test run again, or another test) used as its ephemeral port and
		// left in TIME_WAIT: only new ones count.
		before := timeWaits(t, uint16(port))
		for range 20 {
			require.NoError(t, p.Probe(context.Background(), u))
		}
		var added []string
		for tw := range timeWaits(t, uint16(port)) {
			if !before[tw] {
				added = append(added, tw)
			}
		}
		assert.Empty(t, added, "sockets in TIME_WAIT to or from port %d", port)
	})
}

// timeWaits returns the TCP sockets in TIME_WAIT with port at either end,
// from /proc/net/tcp and tcp6, each as its local and remote address.
func timeWaits(t *testing.T, port uint16) map[string]bool {
	t.Helper()
	hex := fmt.Sprintf(":%04X", port)
	tws := make(map[string]bool)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "06" { // 06: TIME_WAIT
				continue
			}
			if strings.HasSuffix(fields[1], hex) || strings.HasSuffix(fields[2], hex) {
				tws[fields[1]+" "+fields[2]] = true
			}
		}
	}
	return tws
}
