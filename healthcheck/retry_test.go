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

// lossyTCP is a pir health server that swallows the probe on its first n
// connections (as if the byte or its reply were lost) and answers the rest.
func lossyTCP(t *testing.T, n int) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	var held []net.Conn
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	})
	go func() {
		defer close(done)
		for seen := 0; ; seen++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if seen < n {
				held = append(held, c) // never answered
				continue
			}
			b := make([]byte, 1)
			if _, err := c.Read(b); err == nil {
				c.Write([]byte{0})
			}
			c.Close()
		}
	}()
	return &url.URL{Scheme: "tcp", Host: ln.Addr().String()}
}

// A probe whose byte or reply is lost after the connection is made is
// hedged by another attempt on a new connection.
func TestTCPProbeHedgesLostExchange(t *testing.T) {
	p := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: time.Second, Retry: 50 * time.Millisecond})
	require.NoError(t, p.Probe(context.Background(), lossyTCP(t, 2)), "the third connection answers")

	once := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: 300 * time.Millisecond, Retry: -1})
	assert.ErrorIs(t, once.Probe(context.Background(), lossyTCP(t, 1)), os.ErrDeadlineExceeded)
}
