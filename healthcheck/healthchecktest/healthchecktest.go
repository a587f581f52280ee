// Package healthchecktest checks that a healthcheck.Prober keeps the
// contract every prober shares, against a server it can make healthy,
// unhealthy or closed. It is the prober counterpart of
// golang.org/x/net/nettest: run it from the tests of every Prober.
//
//	func TestTCPConformance(t *testing.T) {
//		p := healthcheck.NewTCPProber(healthcheck.TCPConfig{Timeout: 300 * time.Millisecond})
//		healthchecktest.Run(t, p, func(t *testing.T) healthchecktest.Server {
//			s := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
//			require.NoError(t, s.Start("127.0.0.1:0"))
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
package healthchecktest

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/pirlan/pir/healthcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Server is a running endpoint the prober under test can probe.
// healthcheck.TCPServer, UDPServer and HTTPServer all satisfy it.
type Server interface {
	// URI is what the prober is given.
	URI() *url.URL
	// SetHealthy makes the server answer probes as a healthy peer (true)
	// or not (false). It is safe to call while probes run.
	SetHealthy(healthy bool)
	// Close stops the server; afterwards probes of URI must fail. Close
	// may be called more than once: Run calls it and so may the cleanup
	// that newServer registers.
	Close() error
}

// Run checks p against servers made by newServer, one per subtest, each
// started healthy. newServer should register the server's Close with
// t.Cleanup.
//
// p must give up within a second or so on a server that does not answer
// (an unhealthy server may stay silent), so configure it with a short
// timeout: Run waits for no timer of its own and asserts no duration.
//
// The checks: a healthy server passes, an unhealthy one fails and a
// healthy one again passes; a closed server fails; a context cancelled or
// past its deadline before the probe makes it fail with an error wrapping
// ctx.Err() (which a prober that ignores ctx would not return against a
// healthy server); probes from many goroutines at once all pass, and stay
// race-free while the server's health flips.
func Run(t *testing.T, p healthcheck.Prober, newServer func(t *testing.T) Server) {
	t.Helper()
	t.Run("Healthy", func(t *testing.T) {
		s := newServer(t)
		require.NoError(t, p.Probe(context.Background(), s.URI()))
	})
	t.Run("Unhealthy", func(t *testing.T) {
		s := newServer(t)
		s.SetHealthy(false)
		require.Error(t, p.Probe(context.Background(), s.URI()), "probe of an unhealthy server")
		s.SetHealthy(true)
		require.NoError(t, p.Probe(context.Background(), s.URI()), "probe after the server recovered")
	})
	t.Run("Closed", func(t *testing.T) {
		s := newServer(t)
		u := s.URI()
		require.NoError(t, s.Close())
		require.Error(t, p.Probe(context.Background(), u), "probe of a closed server")
	})
	t.Run("CancelledContext", func(t *testing.T) {
		s := newServer(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := p.Probe(ctx, s.URI())
		require.ErrorIs(t, err, context.Canceled)
	})
	t.Run("ExpiredDeadline", func(t *testing.T) {
		s := newServer(t)
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		err := p.Probe(ctx, s.URI())
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("CancelRacesProbe", func(t *testing.T) {
		// Cancelling while probes are in flight must end each of them
		// either way, never anything else.
		s := newServer(t)
		errs := probeMany(8, 4, func(int) error {
			ctx, cancel := context.WithCancel(context.Background())
			go cancel()
			err := p.Probe(ctx, s.URI())
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		})
		for _, err := range errs {
			assert.NoError(t, err)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		s := newServer(t)
		errs := probeMany(8, 4, func(int) error {
			return p.Probe(context.Background(), s.URI())
		})
		for _, err := range errs {
			assert.NoError(t, err)
		}
	})
	t.Run("ConcurrentWithHealthChanges", func(t *testing.T) {
		// Results may go either way here; the race detector does the
		// checking.
		s := newServer(t)
		probeMany(4, 2, func(i int) error {
			s.SetHealthy(i%2 == 0)
			return p.Probe(context.Background(), s.URI())
		})
		s.SetHealthy(true)
		require.NoError(t, p.Probe(context.Background(), s.URI()))
	})
}

// probeMany runs probe n times in each of g goroutines at once and returns
// every error, nil ones included.
func probeMany(g, n int, probe func(i int) error) []error {
	errs := make([]error, g*n)
	var wg sync.WaitGroup
	for w := range g {
		wg.Go(func() {
			for i := range n {
				errs[w*n+i] = probe(w*n + i)
			}
		})
	}
	wg.Wait()
	return errs
}
