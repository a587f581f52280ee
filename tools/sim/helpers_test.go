package sim_test

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/pirlan/pir/healthcheck"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The simulations' members are told apart by a health URI on port 1 of a
// made-up host, answered by fakeHealth instead of a socket, so that
// synctest's clock drives the whole protocol. (A copy of what the
// discovery package's own tests use, in discovery/helpers_test.go.)

func healthURI(name string) *url.URL { return &url.URL{Scheme: "tcp", Host: name + ":1"} }

type probeMode int

const (
	up     probeMode = iota + 1
	silent           // never answers: the probe times out
)

// fakeHealth is a Prober whose answers the simulation sets per health host.
// A host with no mode set refuses at once, like a closed port.
type fakeHealth struct {
	mu     sync.Mutex
	modes  map[string]probeMode
	probes map[string]int
}

func newFakeHealth() *fakeHealth {
	return &fakeHealth{modes: map[string]probeMode{}, probes: map[string]int{}}
}

var _ healthcheck.Prober = (*fakeHealth)(nil)

func (f *fakeHealth) set(host string, m probeMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.modes[host] = m
}

func (f *fakeHealth) state(u *url.URL) (probeMode, bool) {
	if u == nil {
		return 0, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.modes[u.Host]
	return m, ok
}

func (f *fakeHealth) count(host string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.probes[host]
}

// Supports makes fakeHealth a tcp-only prober.
func (f *fakeHealth) Supports(scheme string) bool { return scheme == "tcp" }

func (f *fakeHealth) Probe(ctx context.Context, target *url.URL) error {
	f.mu.Lock()
	f.probes[target.Host]++
	m := f.modes[target.Host]
	f.mu.Unlock()
	switch m {
	case up:
		return nil
	case silent:
		<-ctx.Done()
		return ctx.Err()
	default:
		return fmt.Errorf("connect %s: connection refused", target.Host)
	}
}

// advance moves the bubble's fake clock on by d and lets every goroutine
// run until it blocks. It must be called inside synctest.Test.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}
