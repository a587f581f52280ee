package healthcheck_test

import (
	"context"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/healthcheck"
)

// lossyUDP answers 0x00, but drops the first n probe datagrams it gets, as
// a lossy link would.
func lossyUDP(t *testing.T, n int) *url.URL {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 16)
		for seen := 0; ; seen++ {
			_, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if seen >= n {
				c.WriteTo([]byte{0}, from)
			}
		}
	}()
	return &url.URL{Scheme: "udp", Host: c.LocalAddr().String()}
}

func TestUDPProbeResendsLostDatagrams(t *testing.T) {
	target := lossyUDP(t, 2)
	p := healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: 2 * time.Second, Retry: 50 * time.Millisecond})
	require.NoError(t, p.Probe(context.Background(), target), "the third datagram is answered")

	once := healthcheck.NewUDPProber(healthcheck.UDPConfig{Timeout: 300 * time.Millisecond, Retry: -1})
	err := once.Probe(context.Background(), lossyUDP(t, 1))
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "sent once, lost once")
}
