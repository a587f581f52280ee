package mdns

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport"
)

// Every test that opens a socket runs inside the private namespace netlab
// makes, where lo is the only interface: nothing reaches a real network.
// The interoperability tests start this binary again on hosts of a lab
// (internal/nslan) as a helper program (see interop_test.go).
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helper(os.Args[1:]))
	}
	netlab.Main(m)
}

// timeout bounds every wait for something the network should bring.
const timeout = 10 * time.Second

// leakCheck registers, first, a cleanup that runs last: after every Conn
// the test made is closed, none of their goroutines may remain.
func leakCheck(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// freePort returns a UDP port that nothing in the namespace uses in
// either family, so that each test is a private mDNS network.
func freePort(t *testing.T) uint16 {
	t.Helper()
	for range 100 {
		c4, err := net.ListenPacket("udp4", ":0")
		require.NoError(t, err)
		port := c4.LocalAddr().(*net.UDPAddr).Port
		c6, err := net.ListenPacket("udp6", net.JoinHostPort("::", strconv.Itoa(port)))
		c4.Close()
		if err == nil {
			c6.Close()
			return uint16(port)
		}
	}
	t.Fatal("no UDP port free in both families")
	return 0
}

func testLogger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: tWriter{t}})
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// peer is a Conn under test with what it reports: its milestones and the
// messages it receives.
type peer struct {
	*Conn
	t      *testing.T
	events chan [2]string
	msgs   chan got
}

// got is a message a peer received.
type got struct {
	msg codec.Message
	pkt transport.Packet
	raw []byte
}

// open makes a Conn on lo with cfg (Port and Interfaces filled in when
// zero) and a goroutine that receives from it; the cleanup closes it and
// waits for that goroutine.
func open(t *testing.T, cfg Config) *peer {
	t.Helper()
	if len(cfg.Interfaces) == 0 {
		cfg.Interfaces = []string{netlab.Loopback}
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.Group == "" {
		cfg.Group = "test"
	}
	p := &peer{t: t, events: make(chan [2]string, 64), msgs: make(chan got, 1024)}
	cfg.testEvent = func(ev, name string) {
		select {
		case p.events <- [2]string{ev, name}:
		default:
		}
	}
	c, err := New(cfg)
	require.NoError(t, err)
	p.Conn = c
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			pkt, err := c.Receive(buf)
			if err != nil {
				if c.isClosed() {
					return
				}
				continue
			}
			g := got{pkt: pkt, raw: bytes.Clone(buf[:pkt.N])}
			_ = (Codec{}).Decode(g.raw, &g.msg)
			select {
			case p.msgs <- g:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		require.NoError(t, c.Close())
		<-done
	})
	return p
}

// waitEvent waits for the milestone ev and returns its name.
func (p *peer) waitEvent(ev string) string {
	p.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case e := <-p.events:
			if e[0] == ev {
				return e[1]
			}
		case <-timer.C:
			p.t.Fatalf("no %q event within %v", ev, timeout)
			return ""
		}
	}
}

// waitMsg waits for a received message that match accepts.
func (p *peer) waitMsg(what string, match func(got) bool) got {
	p.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case g := <-p.msgs:
			if match(g) {
				return g
			}
		case <-timer.C:
			p.t.Fatalf("nothing received within %v while waiting for %s", timeout, what)
			return got{}
		}
	}
}

// announceOf matches an announcement of the member id.
func announceOf(id string) func(got) bool {
	return func(g got) bool { return g.msg.Kind == codec.Announce && g.msg.ID == id }
}

// goodbyeOf matches a goodbye of the member id.
func goodbyeOf(id string) func(got) bool {
	return func(g got) bool { return g.msg.Kind == codec.Goodbye && g.msg.ID == id }
}

// send encodes m with the Conn's codec and gives it to the peer's Send.
func (p *peer) send(m codec.Message) {
	p.t.Helper()
	b, err := (Codec{}).Encode(nil, &m)
	require.NoError(p.t, err)
	require.NoError(p.t, p.Send(b))
}

// member returns a Query (the first message of a joining Group) of the
// member id of group "test".
func member(id string, port int) codec.Message {
	u := "tcp://" + netip.AddrPortFrom(netlab.LoopbackV4, uint16(port)).String()
	return codec.Message{Kind: codec.Query, Group: "test", ID: id, Health: u, Comms: u}
}
