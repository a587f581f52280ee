// Command mlshim runs a hashicorp/memberlist node behind pir's command-line
// contract, so that pirbench (tools/pirbench) can measure memberlist in the
// same lab and by the same yardstick as pir. It is a benchmark contender,
// not an integration: plugins/memberlist is pir's memberlist transport.
//
//	mlshim join -json -iface eth0 -id NAME [-seed ADDR]
//	mlshim config
//
// join starts a node with memberlist.DefaultLANConfig, changed only where
// it must be: the node's name is -id, and it binds to and advertises the
// address of -iface (its first IPv4 address, else its first global IPv6
// one), never the wildcard address. With -seed it joins the group through
// the node at ADDR (memberlist's default port 7946 unless ADDR has one);
// the first node has no seed. It prints, one JSON object a line, what
// "pir join -json" prints about the other members:
//
//	{"time":"...","event":"joined","id":"NAME","addr":"198.18.0.2:7946"}
//	{"time":"...","event":"left","id":"NAME","addr":"...","reason":"goodbye"}
//
// A member that left gracefully (memberlist's StateLeft: it announced its
// own death) is "left" with reason "goodbye"; one that others declared dead
// (StateDead, after their suspicion timed out) is "left" with reason
// "failed". A changed node meta is "updated". On SIGINT or SIGTERM the node
// leaves (memberlist's Leave, which waits until its leave message has been
// gossiped, at most 5 s) and shuts down. memberlist's own log goes to
// stderr, as by default.
//
// config prints the settings a node runs with, and memberlist's version,
// as one JSON object of strings, which pirbench records with its results.
//
// memberlist's EventDelegate is handed the Node only, whose State field
// memberlist does not keep; the state is in the nodeState that embeds it.
// mlshim reads it from there (see stateOf), which depends on memberlist's
// internal layout: it checks that layout on its own node at start and
// exits if it does not match, so that a memberlist upgrade that changes it
// fails loudly instead of reporting wrong reasons.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"
)

// leaveTimeout bounds the wait for the leave message to be gossiped.
const leaveTimeout = 5 * time.Second

// joinTimeout bounds the attempts to join through the seed.
const joinTimeout = 30 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: mlshim join -json -iface IFACE -id NAME [-seed ADDR] | mlshim config")
		return 2
	}
	switch args[0] {
	case "config":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(describe(newConfig("NAME", netip.MustParseAddr("198.18.0.1"), nil))); err != nil {
			fmt.Fprintf(stderr, "mlshim: %v\n", err)
			return 1
		}
		return 0
	case "join":
		o, err := parseJoin(args[1:], stderr)
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err != nil {
			fmt.Fprintf(stderr, "mlshim: %v\n", err)
			return 2
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := join(ctx, o, stdout); err != nil {
			fmt.Fprintf(stderr, "mlshim: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "mlshim: unknown command %q (want join or config)\n", args[0])
	return 2
}

type joinOptions struct {
	iface, id, seed string
}

func parseJoin(args []string, stderr io.Writer) (joinOptions, error) {
	fs := flag.NewFlagSet("mlshim join", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o joinOptions
	asJSON := fs.Bool("json", false, "print events as JSON lines (the only output form; required)")
	fs.StringVar(&o.iface, "iface", "", "interface whose address the node binds to and advertises (required)")
	fs.StringVar(&o.id, "id", "", "the node's name (required)")
	fs.StringVar(&o.seed, "seed", "", "address of a member to join through, host or host:port (none: start a group)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	if !*asJSON {
		errs = append(errs, errors.New("-json is required: mlshim prints JSON lines only"))
	}
	if o.iface == "" {
		errs = append(errs, errors.New("-iface is required"))
	}
	if o.id == "" {
		errs = append(errs, errors.New("-id is required"))
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	return o, errors.Join(errs...)
}

// newConfig returns memberlist's DefaultLANConfig for a node named name
// bound to addr, with events as its EventDelegate.
func newConfig(name string, addr netip.Addr, events memberlist.EventDelegate) *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.Name = name
	c.BindAddr = addr.String()
	c.AdvertiseAddr = addr.String()
	c.Events = events
	return c
}

// describe returns what a node's settings are, by name, with memberlist's
// version: what pirbench records with its results.
func describe(c *memberlist.Config) map[string]string {
	version := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/hashicorp/memberlist" {
				version = d.Version
			}
		}
	}
	d := func(v time.Duration) string { return v.String() }
	return map[string]string{
		"memberlist":              "github.com/hashicorp/memberlist " + version,
		"config":                  "DefaultLANConfig; Name = -id, BindAddr = AdvertiseAddr = the address of -iface",
		"BindPort":                strconv.Itoa(c.BindPort),
		"ProtocolVersion":         strconv.Itoa(int(c.ProtocolVersion)),
		"ProbeInterval":           d(c.ProbeInterval),
		"ProbeTimeout":            d(c.ProbeTimeout),
		"IndirectChecks":          strconv.Itoa(c.IndirectChecks),
		"DisableTcpPings":         strconv.FormatBool(c.DisableTcpPings),
		"SuspicionMult":           strconv.Itoa(c.SuspicionMult),
		"SuspicionMaxTimeoutMult": strconv.Itoa(c.SuspicionMaxTimeoutMult),
		"AwarenessMaxMultiplier":  strconv.Itoa(c.AwarenessMaxMultiplier),
		"RetransmitMult":          strconv.Itoa(c.RetransmitMult),
		"GossipNodes":             strconv.Itoa(c.GossipNodes),
		"GossipInterval":          d(c.GossipInterval),
		"GossipToTheDeadTime":     d(c.GossipToTheDeadTime),
		"PushPullInterval":        d(c.PushPullInterval),
		"TCPTimeout":              d(c.TCPTimeout),
		"EnableCompression":       strconv.FormatBool(c.EnableCompression),
		"UDPBufferSize":           strconv.Itoa(c.UDPBufferSize),
		"Encryption":              strconv.FormatBool(c.SecretKey != nil || c.Keyring != nil),
		"LeaveTimeout":            d(leaveTimeout),
	}
}

// ifaceAddr returns the address of the interface named name that the node
// binds to: its first IPv4 address, else its first global unicast IPv6
// address.
func ifaceAddr(name string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", name, err)
	}
	var v6 netip.Addr
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := p.Addr().Unmap()
		switch {
		case ip.Is4() && !ip.IsUnspecified():
			return ip, nil
		case ip.Is6() && ip.IsGlobalUnicast() && !v6.IsValid():
			v6 = ip
		}
	}
	if v6.IsValid() {
		return v6, nil
	}
	return netip.Addr{}, fmt.Errorf("%s has no IPv4 or global IPv6 address", name)
}

func join(ctx context.Context, o joinOptions, stdout io.Writer) error {
	addr, err := ifaceAddr(o.iface)
	if err != nil {
		return err
	}
	ev := &events{self: o.id, out: &printer{w: stdout}, broken: make(chan struct{})}
	m, err := memberlist.Create(newConfig(o.id, addr, ev))
	if err != nil {
		return fmt.Errorf("starting memberlist: %w", err)
	}
	if err := ev.layoutErr(); err != nil {
		return errors.Join(err, m.Shutdown())
	}
	if o.seed != "" {
		if err := joinSeed(ctx, m, o.seed); err != nil {
			return errors.Join(err, m.Shutdown())
		}
	}
	select {
	case <-ctx.Done():
	case <-ev.broken:
		return errors.Join(ev.err(), m.Shutdown())
	}
	lerr := m.Leave(leaveTimeout)
	if lerr != nil {
		lerr = fmt.Errorf("leaving: %w", lerr)
	}
	return errors.Join(lerr, m.Shutdown(), ev.out.Err())
}

// joinSeed joins through seed, trying again every 200 ms for at most
// joinTimeout (the seed may not listen yet).
func joinSeed(ctx context.Context, m *memberlist.Memberlist, seed string) error {
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	for {
		_, err := m.Join([]string{seed})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("joining through %s: %w", seed, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// jsonEvent is one output line, in the form and with the field names of
// "pir join -json".
type jsonEvent struct {
	Time   time.Time `json:"time"`
	Event  string    `json:"event"`
	ID     string    `json:"id"`
	Addr   string    `json:"addr,omitempty"`
	Reason string    `json:"reason,omitempty"`
}

// printer writes event lines; it keeps the first write error.
type printer struct {
	mu  sync.Mutex
	w   io.Writer
	bad error
}

func (p *printer) print(e jsonEvent) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bad == nil {
		_, p.bad = p.w.Write(append(b, '\n'))
	}
	return p.bad
}

// Err returns the first write error, or nil.
func (p *printer) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bad
}

// events is the node's memberlist.EventDelegate. memberlist calls it with
// its node lock held, which is what makes reading the node's state safe.
type events struct {
	self string
	out  *printer

	mu       sync.Mutex
	checked  bool  // the layout was checked on our own node
	failure  error // a layout mismatch or a write error
	broken   chan struct{}
	breakOne sync.Once
}

var _ memberlist.EventDelegate = (*events)(nil)

func (e *events) NotifyJoin(n *memberlist.Node) {
	if n.Name == e.self {
		st, changed := stateOf(n)
		e.mu.Lock()
		e.checked = true
		e.mu.Unlock()
		if err := checkLayout(st, changed, time.Now()); err != nil {
			e.fail(err)
		}
		return
	}
	e.emit(jsonEvent{Event: "joined", ID: n.Name, Addr: n.Address()})
}

func (e *events) NotifyUpdate(n *memberlist.Node) {
	if n.Name != e.self {
		e.emit(jsonEvent{Event: "updated", ID: n.Name, Addr: n.Address()})
	}
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	if n.Name == e.self {
		return
	}
	st, _ := stateOf(n)
	reason, err := leftReason(st)
	if err != nil {
		e.fail(fmt.Errorf("%s left: %w", n.Name, err))
		return
	}
	e.emit(jsonEvent{Event: "left", ID: n.Name, Addr: n.Address(), Reason: reason})
}

func (e *events) emit(ev jsonEvent) {
	ev.Time = time.Now()
	if err := e.out.print(ev); err != nil {
		e.fail(fmt.Errorf("writing events: %w", err))
	}
}

func (e *events) fail(err error) {
	e.mu.Lock()
	if e.failure == nil {
		e.failure = err
	}
	e.mu.Unlock()
	e.breakOne.Do(func() { close(e.broken) })
}

func (e *events) err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.failure
}

// layoutErr reports, once memberlist.Create returned (it announces our own
// node to the delegate), whether the layout check failed or never ran.
func (e *events) layoutErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failure != nil {
		return e.failure
	}
	if !e.checked {
		return errors.New("memberlist did not announce our own node: cannot check its state layout")
	}
	return nil
}

// leftReason maps the state of a node memberlist reports gone to pir's
// reason: it announced its own leave (goodbye), or others declared it
// dead (failed).
func leftReason(st memberlist.NodeStateType) (string, error) {
	switch st {
	case memberlist.StateLeft:
		return "goodbye", nil
	case memberlist.StateDead:
		return "failed", nil
	}
	return "", fmt.Errorf("state %d is neither left nor dead: memberlist's nodeState layout changed (see stateOf)", st)
}

// checkLayout checks the state read by stateOf from our own node, just
// made alive: if the layout is memberlist's, it is StateAlive, changed
// within the last minute.
func checkLayout(st memberlist.NodeStateType, changed, now time.Time) error {
	if st != memberlist.StateAlive || changed.IsZero() || now.Sub(changed) < 0 || now.Sub(changed) > time.Minute {
		return fmt.Errorf("memberlist's nodeState layout is not the one mlshim knows (our own node reads state %d, changed %v): update stateOf", st, changed)
	}
	return nil
}

// nodeState mirrors memberlist's unexported nodeState (state.go,
// v0.7.0), whose first field is the Node the EventDelegate is handed.
type nodeState struct {
	memberlist.Node
	Incarnation uint32
	State       memberlist.NodeStateType
	StateChange time.Time
}

// stateOf returns the state and time of last state change that memberlist
// keeps beside n, which must be the Node an EventDelegate was handed (the
// one embedded in memberlist's nodeState), read while memberlist holds its
// node lock, as it does when it calls the delegate.
func stateOf(n *memberlist.Node) (memberlist.NodeStateType, time.Time) {
	s := (*nodeState)(unsafe.Pointer(n))
	return s.State, s.StateChange
}
