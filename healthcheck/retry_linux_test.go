package healthcheck_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/healthcheck"
)

// fullBacklog is a pir health server whose accept queue is full, so the
// kernel silently drops new SYNs, as a lost SYN on a lossy link looks to the
// prober. After release it accepts and answers everything.
func fullBacklog(t *testing.T) (target *url.URL, release func()) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	require.NoError(t, err)
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, syscall.Listen(fd, 0))
	f := os.NewFile(uintptr(fd), "listener")
	ln, err := net.FileListener(f)
	f.Close()
	require.NoError(t, err)
	addr := ln.Addr().String()
	// Fill the queue (backlog 0 holds one) with connections never accepted.
	var fillers []net.Conn
	for range 2 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		fillers = append(fillers, c)
	}
	served := make(chan struct{})
	released := make(chan struct{})
	go func() {
		defer close(served)
		<-released
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 1)
				if _, err := c.Read(b); err == nil {
					c.Write([]byte{0})
				}
			}()
		}
	}()
	release = sync.OnceFunc(func() { close(released) })
	t.Cleanup(func() {
		ln.Close()
		release()
		<-served
		for _, c := range fillers {
			c.Close()
		}
	})
	return &url.URL{Scheme: "tcp", Host: addr}, release
}

// A SYN dropped while the queue is full is retransmitted by the kernel only
// after 1 s; a new attempt started beside it gets through at once when the
// queue frees.
func TestTCPProbeRetriesConnect(t *testing.T) {
	for _, tc := range []struct {
		retry time.Duration
		ok    bool
	}{{100 * time.Millisecond, true}, {-1, false}} {
		t.Run(fmt.Sprint(tc.retry), func(t *testing.T) {
			target, release := fullBacklog(t)
			time.AfterFunc(200*time.Millisecond, release)
			p := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: 800 * time.Millisecond, Retry: tc.retry})
			err := p.Probe(context.Background(), target)
			if tc.ok {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "one attempt waits for the kernel's 1 s retransmission")
			}
		})
	}
}
