package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/internal/nslan"
	"github.com/pirlan/pir/internal/nslan/pircli"
)

func TestMain(m *testing.M) { netlab.Main(m) }

// eventWait bounds each wait for an event. memberlist declares a silent
// node of a group of two dead after its suspicion timeout, 4 probe
// intervals (4 s) with DefaultLANConfig; the bound is far above that, for a
// loaded machine.
const eventWait = 60 * time.Second

func TestParseJoin(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseJoin([]string{"-json", "-iface", "eth0", "-id", "ml-h1", "-seed", "198.18.0.1"}, &stderr)
	require.NoError(t, err)
	assert.Equal(t, joinOptions{iface: "eth0", id: "ml-h1", seed: "198.18.0.1"}, o)

	_, err = parseJoin([]string{"-iface", "eth0", "extra"}, &stderr)
	require.Error(t, err)
	for _, want := range []string{"-json", "-id", "unexpected"} {
		assert.Contains(t, err.Error(), want, "every problem at once")
	}
	_, err = parseJoin([]string{"-h"}, &stderr)
	assert.ErrorIs(t, err, flag.ErrHelp)

	assert.Equal(t, 2, run(nil, io.Discard, io.Discard))
	assert.Equal(t, 2, run([]string{"watch"}, io.Discard, io.Discard))
	assert.Equal(t, 2, run([]string{"join", "-iface", "eth0"}, io.Discard, io.Discard))
}

func TestConfig(t *testing.T) {
	var stdout bytes.Buffer
	require.Equal(t, 0, run([]string{"config"}, &stdout, io.Discard))
	out := stdout.String()
	for _, want := range []string{`"ProbeInterval": "1s"`, `"GossipInterval": "200ms"`, `"SuspicionMult": "4"`, `"memberlist": "github.com/hashicorp/memberlist `} {
		assert.Contains(t, out, want)
	}

	// Only the name and the addresses differ from DefaultLANConfig.
	c := newConfig("n1", netip.MustParseAddr("198.18.0.3"), nil)
	def := memberlist.DefaultLANConfig()
	assert.Equal(t, "n1", c.Name)
	assert.Equal(t, "198.18.0.3", c.BindAddr)
	assert.Equal(t, "198.18.0.3", c.AdvertiseAddr)
	c.Name, c.BindAddr, c.AdvertiseAddr = def.Name, def.BindAddr, def.AdvertiseAddr
	assert.Equal(t, def, c)
}

func TestLeftReason(t *testing.T) {
	r, err := leftReason(memberlist.StateLeft)
	require.NoError(t, err)
	assert.Equal(t, pircli.Goodbye, r)
	r, err = leftReason(memberlist.StateDead)
	require.NoError(t, err)
	assert.Equal(t, pircli.Failed, r)
	for _, st := range []memberlist.NodeStateType{memberlist.StateAlive, memberlist.StateSuspect, 42} {
		_, err = leftReason(st)
		assert.Error(t, err, "state %d", st)
	}

	now := time.Now()
	assert.NoError(t, checkLayout(memberlist.StateAlive, now.Add(-time.Second), now))
	assert.Error(t, checkLayout(memberlist.StateDead, now, now))
	assert.Error(t, checkLayout(memberlist.StateAlive, time.Time{}, now))
	assert.Error(t, checkLayout(memberlist.StateAlive, now.Add(-time.Hour), now))
	assert.Error(t, checkLayout(memberlist.StateAlive, now.Add(time.Hour), now))
}

// TestLinesParse: what mlshim prints is what pirbench reads from pir.
func TestLinesParse(t *testing.T) {
	var b bytes.Buffer
	p := &printer{w: &b}
	require.NoError(t, p.print(jsonEvent{Time: time.Now(), Event: "joined", ID: "ml-h1", Addr: "198.18.0.2:7946"}))
	require.NoError(t, p.print(jsonEvent{Time: time.Now(), Event: "left", ID: "ml-h1", Reason: "goodbye"}))
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	require.Len(t, lines, 2)
	e, err := pircli.Parse(nslan.Line{Text: lines[0]})
	require.NoError(t, err)
	assert.Equal(t, pircli.Joined, e.Event)
	assert.Equal(t, "ml-h1", e.ID)
	assert.Equal(t, "198.18.0.2:7946", e.Addr)
	assert.WithinDuration(t, time.Now(), e.Time, time.Minute)
	e, err = pircli.Parse(nslan.Line{Text: lines[1]})
	require.NoError(t, err)
	assert.Equal(t, pircli.Left, e.Event)
	assert.Equal(t, pircli.Goodbye, e.Reason)
}

// lineWriter hands each line written to it to a channel.
type lineWriter struct{ lines chan string }

func (w lineWriter) Write(b []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		w.lines <- sc.Text()
	}
	return len(b), nil
}

// eventLog is the events a node printed, read from its lines as a test
// waits for them.
type eventLog struct {
	lines <-chan string
	seen  []pircli.Event
}

// wait waits for an event of type typ about id, printed before or after
// earlier waits, and returns it.
func (l *eventLog) wait(t *testing.T, typ, id string) pircli.Event {
	t.Helper()
	match := pircli.Is(typ, id)
	for _, e := range l.seen {
		if match(e) {
			return e
		}
	}
	deadline := time.After(eventWait)
	for {
		select {
		case line := <-l.lines:
			e, err := pircli.Parse(nslan.Line{Text: line})
			require.NoError(t, err)
			l.seen = append(l.seen, e)
			if match(e) {
				return e
			}
		case <-deadline:
			require.FailNow(t, "no event", "%s about %s", typ, id)
		}
	}
}

// node starts a memberlist node named name on 127.0.0.1, on a port of its
// own, with the shim's configuration and events, and returns it with the
// log of the events it prints.
func node(t *testing.T, name string) (*memberlist.Memberlist, *eventLog) {
	t.Helper()
	lines := make(chan string, 100)
	ev := &events{self: name, out: &printer{w: lineWriter{lines}}, broken: make(chan struct{})}
	c := newConfig(name, netip.MustParseAddr("127.0.0.1"), ev)
	c.BindPort, c.AdvertisePort = 0, 0
	c.LogOutput = io.Discard
	m, err := memberlist.Create(c)
	require.NoError(t, err)
	require.NoError(t, ev.layoutErr(), "the layout check ran and passed")
	t.Cleanup(func() { m.Shutdown() })
	return m, &eventLog{lines: lines}
}

// TestReasons plays a graceful leave and a crash between real memberlist
// nodes: the one left reads goodbye for the first, failed for the second.
// It checks stateOf against the memberlist in go.mod.
func TestReasons(t *testing.T) {
	netlab.Require(t)
	a, lines := node(t, "a")
	b, _ := node(t, "b")
	c, _ := node(t, "c")
	for _, m := range []*memberlist.Memberlist{b, c} {
		_, err := m.Join([]string{a.LocalNode().Address()})
		require.NoError(t, err)
	}
	lines.wait(t, pircli.Joined, "b")
	lines.wait(t, pircli.Joined, "c")

	require.NoError(t, b.Leave(leaveTimeout))
	require.NoError(t, b.Shutdown())
	e := lines.wait(t, pircli.Left, "b")
	assert.Equal(t, pircli.Goodbye, e.Reason)

	require.NoError(t, c.Shutdown()) // no leave: a crash
	e = lines.wait(t, pircli.Left, "c")
	assert.Equal(t, pircli.Failed, e.Reason)
}

// TestJoin runs the shim's join on lo against a node on another port: each
// sees the other, and when the shim's context ends it leaves with a
// goodbye.
func TestJoin(t *testing.T) {
	netlab.Require(t)
	addr, err := ifaceAddr("lo")
	require.NoError(t, err)
	require.True(t, addr.Is4(), "lo's IPv4 address first: %v", addr)

	seed, lines := node(t, "seed")
	outc := make(chan string, 100)
	out := &eventLog{lines: outc}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- join(ctx, joinOptions{iface: "lo", id: "shim", seed: "127.0.0.1:" + strconv.Itoa(int(seed.LocalNode().Port))}, lineWriter{outc})
	}()
	e := out.wait(t, pircli.Joined, "seed")
	assert.Equal(t, seed.LocalNode().Address(), e.Addr)
	e = lines.wait(t, pircli.Joined, "shim")
	assert.Equal(t, netip.AddrPortFrom(addr, 7946).String(), e.Addr, "bound to lo's address and memberlist's port")

	cancel()
	e = lines.wait(t, pircli.Left, "shim")
	assert.Equal(t, pircli.Goodbye, e.Reason)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(eventWait):
		t.Fatal("join did not return after its context ended")
	}

	_, err = ifaceAddr("nope0")
	assert.Error(t, err)
}
