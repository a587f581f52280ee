package transporttest_test

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/mem"
	"github.com/pirlan/pir/transport/transporttest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// brokenEnv names the fault TestBroken injects, in a child process.
const brokenEnv = "PIR_TRANSPORTTEST_BROKEN"

// broken wraps a mem endpoint and breaks one promise of the Transport
// interface.
type broken struct {
	*mem.Endpoint
	fault string
}

func (b *broken) Send(p []byte) error {
	switch {
	case b.fault == "cuts-large" && len(p) > 1000:
		p = p[:1000]
	case b.fault == "empty-vanishes" && len(p) == 0:
		return nil
	}
	return b.Endpoint.Send(p)
}

func (b *broken) SendTo(p []byte, dst netip.AddrPort) error {
	switch {
	case b.fault == "unicast-is-multicast":
		return b.Send(p)
	case b.fault == "cuts-large" && len(p) > 1000:
		p = p[:1000]
	}
	return b.Endpoint.SendTo(p, dst)
}

func (b *broken) Receive(buf []byte) (transport.Packet, error) {
	switch b.fault {
	case "silent-truncation":
		big := make([]byte, mem.MaxUDP)
		p, err := b.Endpoint.Receive(big)
		p.N = copy(buf, big[:p.N])
		return p, err
	case "close-unwrapped":
		p, err := b.Endpoint.Receive(buf)
		if errors.Is(err, transport.ErrClosed) {
			err = errors.New("endpoint closed")
		}
		return p, err
	case "refusal-as-error":
		p, err := b.Endpoint.Receive(buf)
		if err == nil && p.Refused {
			return transport.Packet{}, errors.New("connection refused")
		}
		return p, err
	case "refusal-wrong-src":
		p, err := b.Endpoint.Receive(buf)
		if err == nil && p.Refused {
			p.Src = netip.AddrPortFrom(p.Src.Addr(), p.Src.Port()+1)
		}
		return p, err
	}
	return b.Endpoint.Receive(buf)
}

// TestBroken runs the suite against a broken transport. It runs only in the
// child process TestSuiteCatchesBrokenTransports starts, and is meant to
// fail there.
func TestBroken(t *testing.T) {
	fault, ok := os.LookupEnv(brokenEnv)
	if !ok {
		t.Skip("runs only as a child of TestSuiteCatchesBrokenTransports")
	}
	transporttest.Run(t, func(t *testing.T, n int) []transport.Transport {
		// Refusals on for the sound transport and the faults about them.
		lan, err := mem.NewLAN(mem.Config{Refusals: fault == "none" || strings.HasPrefix(fault, "refusal")})
		require.NoError(t, err)
		trs := make([]transport.Transport, n)
		for i := range trs {
			trs[i] = &broken{Endpoint: lan.Join(), fault: fault}
		}
		return trs
	})
}

// The suite fails a transport that breaks a promise, in the subtest that
// checks that promise and in no other.
func TestSuiteCatchesBrokenTransports(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child test process per fault")
	}
	failed := regexp.MustCompile(`(?m)^\s*--- FAIL: TestBroken/(\w+)`)
	for _, tc := range []struct {
		fault string
		fails []string
	}{
		{"none", nil},
		{"silent-truncation", []string{"Truncated"}},
		{"unicast-is-multicast", []string{"Unicast"}},
		{"cuts-large", []string{"MaxDatagram"}},
		{"empty-vanishes", []string{"EmptyDatagram"}},
		{"close-unwrapped", []string{"Close", "CloseWhileBusy"}},
		{"refusal-as-error", []string{"Refusals"}},
		{"refusal-wrong-src", []string{"Refusals"}},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBroken$", "-test.v", "-test.count=1", "-test.timeout=60s")
			cmd.Env = append(os.Environ(), brokenEnv+"="+tc.fault, "GORACE=atexit_sleep_ms=0")
			out, err := cmd.CombinedOutput()
			var got []string
			for _, m := range failed.FindAllSubmatch(out, -1) {
				got = append(got, string(m[1]))
			}
			slices.Sort(got)
			if tc.fails == nil {
				require.NoError(t, err, "the suite failed a sound transport:\n%s", out)
			} else {
				var exit *exec.ExitError
				require.ErrorAs(t, err, &exit, "the suite passed a transport with fault %s:\n%s", tc.fault, out)
			}
			assert.Equal(t, tc.fails, got, "failing subtests; output:\n%s", out)
		})
	}
}
