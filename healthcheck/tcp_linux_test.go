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
		for range 20 {
			require.NoError(t, p.Probe(context.Background(), u))
		}
		assert.Zero(t, timeWaits(t, uint16(port)), "sockets in TIME_WAIT to or from port %d", port)
	})
}

// timeWaits counts the TCP sockets in TIME_WAIT with port at either end,
// from /proc/net/tcp and tcp6.
func timeWaits(t *testing.T, port uint16) int {
	t.Helper()
	hex := fmt.Sprintf(":%04X", port)
	n := 0
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
				n++
			}
		}
	}
	return n
}
