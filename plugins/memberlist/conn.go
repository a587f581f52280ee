package memberlist

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/transport"
)

// readBuffer is the size of the buffers the readers receive into: room for
// any UDP datagram, so that only Receive decides what is too long.
const readBuffer = 1 << 16

// bindRetries is how many times New tries to bind TCP and UDP on one free
// port when Bind's port is zero (the kernel may have given the TCP port
// to someone else's UDP socket).
const bindRetries = 10

var (
	_ transport.Transport    = (*Conn)(nil)
	_ transport.DefaultCodec = (*Conn)(nil)
)

// DefaultCodec is the Inner transport's default codec, the pipe format of
// the multicast transport, since the datagrams relayed are the LAN's own;
// pipe.Codec{} without Inner.
func (c *Conn) DefaultCodec() codec.Codec {
	if c.cfg.Inner == nil {
		return pipe.Codec{}
	}
	if d, ok := c.cfg.Inner.(transport.DefaultCodec); ok {
		return d.DefaultCodec()
	}
	return nil
}

// Conn is a transport.Transport that carries a pir group across sites: it
// sends every datagram on its Inner transport (the local LAN) and relays a
// copy, by UDP unicast, to every memberlist node of another site; it
// receives what Inner hears and what other nodes relay to it.
//
// All methods are safe for concurrent use.
type Conn struct {
	cfg       Config
	log       hclog.Logger
	name      string
	advertise netip.AddrPort // memberlist's address
	relayAddr netip.AddrPort // the relay socket's advertised address
	bindPort  uint16         // memberlist's port, the default of seeds
	meta      []byte

	ml    *memberlist.Memberlist
	relay *net.UDPConn
	queue chan item

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	mu     sync.Mutex
	nodes  map[string]Node             // the other nodes, by name
	relays map[netip.AddrPort]struct{} // every node's relay address, for SendTo
	// gone keeps, for leftGrace, the relay addresses of nodes that left
	// and when: a node's last datagrams (its members' goodbyes) may be
	// read after memberlist's news of its leave.
	gone   map[netip.AddrPort]time.Time
	remote atomic.Pointer[[]netip.AddrPort] // relay addresses of the nodes Send relays to

	stats struct {
		relaySent, relayErrors, relayReceived, relayDropped, badMeta, joins, joinErrors atomic.Uint64
	}

	closeOnce sync.Once
	closeErr  error
}

// item is one received datagram, or a receive error, waiting for Receive.
type item struct {
	data    []byte
	src     netip.AddrPort
	ifIndex int
	err     error
}

// Node is another member of the memberlist cluster, as this one knows it.
type Node struct {
	// Name is the node's memberlist name.
	Name string
	// Addr is its memberlist address.
	Addr netip.AddrPort
	// Relay is where it receives relayed datagrams.
	Relay netip.AddrPort
	// Site is the site it says it is on; empty for none.
	Site string
	// Remote reports whether Send relays to it: it is on another site, or
	// one of the two has no site.
	Remote bool
}

// Stats are a Conn's counters.
type Stats struct {
	// Nodes is the number of other memberlist nodes known alive whose
	// metadata parsed (members using this package); Remote those Send
	// relays to.
	Nodes, Remote int
	// RelaySent counts datagrams relayed to other nodes (one per node per
	// datagram); RelayErrors the relays that failed; RelayReceived the
	// datagrams received on the relay socket from known nodes, handed to
	// Receive; RelayDropped those received on the relay socket from any
	// other address (not the relay address of a node memberlist knows
	// alive), dropped.
	RelaySent, RelayErrors, RelayReceived, RelayDropped uint64
	// BadMeta counts node updates ignored because their metadata did not
	// parse (a node of another program, or of a later version).
	BadMeta uint64
	// Joins and JoinErrors count attempts to join the seeds, and those
	// that reached none.
	Joins, JoinErrors uint64
}

// New starts a Conn: it opens the relay socket, starts memberlist on
// cfg.Bind and tries to join cfg.Seeds once, waiting for that try or for
// ctx, whichever ends first. Seeds that cannot be reached are not an error
// (sites may start in any order): they are tried again every
// RejoinInterval. ctx bounds only the start. On error cfg.Inner is closed.
func New(ctx context.Context, cfg Config) (*Conn, error) {
	c, err := newConn(ctx, cfg)
	if err != nil && cfg.Inner != nil {
		if cerr := cfg.Inner.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing Inner: %w", cerr))
		}
	}
	return c, err
}

func newConn(ctx context.Context, cfg Config) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memberlist: start: %w", err)
	}
	cfg = cfg.withDefaults()
	c := &Conn{
		cfg:    cfg,
		log:    cfg.Logger,
		name:   cfg.Name,
		queue:  make(chan item, cfg.QueueLen),
		nodes:  make(map[string]Node),
		relays: make(map[netip.AddrPort]struct{}),
		gone:   make(map[netip.AddrPort]time.Time),
	}
	c.remote.Store(new([]netip.AddrPort))
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if c.name == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		c.name = "pir-" + hex.EncodeToString(b[:])
	}

	ok := false
	defer func() {
		if !ok {
			c.cancel()
			if c.relay != nil {
				_ = c.relay.Close()
			}
			c.wg.Wait()
		}
	}()

	bind := netip.AddrPortFrom(cfg.Bind.Addr().Unmap(), cfg.Bind.Port())
	network := "udp4"
	if bind.Addr().Is6() {
		network = "udp6"
	}
	relay, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(bind.Addr(), uint16(cfg.RelayPort))))
	if err != nil {
		return nil, fmt.Errorf("memberlist: opening the relay socket on %v port %d: %w", bind.Addr(), cfg.RelayPort, err)
	}
	c.relay = relay
	relayPort := relay.LocalAddr().(*net.UDPAddr).Port

	mc, nt, err := c.memberlistConfig(bind)
	if err != nil {
		return nil, err
	}
	c.advertise = netip.AddrPortFrom(netip.MustParseAddr(mc.AdvertiseAddr), uint16(mc.AdvertisePort))
	c.bindPort = uint16(mc.BindPort)
	c.relayAddr = netip.AddrPortFrom(c.advertise.Addr(), uint16(relayPort))
	c.meta = appendMeta(nil, nodeMeta{relayPort: uint16(relayPort), site: cfg.Site})

	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("memberlist: starting memberlist on %v: %w", c.advertise, err)
	}
	c.ml = ml

	c.wg.Add(1)
	go c.readRelay()
	if cfg.Inner != nil {
		c.wg.Add(1)
		go c.readInner()
	}
	joined := make(chan struct{})
	c.wg.Add(1)
	go c.joinLoop(joined)
	ok = true

	select {
	case <-joined:
	case <-ctx.Done():
		c.log.Warn("start ended before the first join finished; joining goes on", "error", ctx.Err())
	}
	c.log.Info("memberlist started", "name", c.name, "addr", c.advertise, "relay", c.relayAddr,
		"site", cfg.Site, "nodes", c.ml.NumMembers())
	return c, nil
}

// memberlistConfig makes memberlist's config, with a transport of ours
// bound to bind.
func (c *Conn) memberlistConfig(bind netip.AddrPort) (*memberlist.Config, *netTransport, error) {
	cfg := c.cfg
	var mc memberlist.Config
	if cfg.Memberlist != nil {
		mc = *cfg.Memberlist
	} else {
		mc = *memberlist.DefaultLANConfig()
	}
	mc.Name = c.name
	mc.Delegate = delegate{c}
	mc.Events = events{c}
	mc.LogOutput = nil
	mc.Logger = c.log.Named("memberlist").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	if len(cfg.SecretKey) > 0 {
		mc.SecretKey = cfg.SecretKey
	}

	var (
		nt  *memberlist.NetTransport
		err error
	)
	for range bindRetries {
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{bind.Addr().String()},
			BindPort:  int(bind.Port()),
			Logger:    mc.Logger,
		})
		if err == nil || bind.Port() != 0 {
			break
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("memberlist: listening on %v: %w", bind, err)
	}
	port := nt.GetAutoBindPort()
	adv := netip.AddrPortFrom(cfg.Advertise.Addr().Unmap(), cfg.Advertise.Port())
	if !adv.Addr().IsValid() {
		adv = netip.AddrPortFrom(bind.Addr(), adv.Port())
	}
	if adv.Port() == 0 {
		adv = netip.AddrPortFrom(adv.Addr(), uint16(port))
	}
	mc.BindAddr, mc.BindPort = bind.Addr().String(), port
	mc.AdvertiseAddr, mc.AdvertisePort = adv.Addr().String(), int(adv.Port())
	t := &netTransport{NetTransport: nt, ctx: c.ctx}
	mc.Transport = t
	return &mc, t, nil
}

// netTransport is memberlist's NetTransport whose dials end when the Conn
// closes, so that Close never waits out a TCP timeout to a seed that does
// not answer.
type netTransport struct {
	*memberlist.NetTransport
	ctx context.Context // the Conn's own: ends at Close
}

// DialTimeout is memberlist.Transport's. The connection, too, is closed
// when the Conn closes, which ends a push/pull waiting for an answer.
func (t *netTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(t.ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &dialedConn{Conn: conn, stop: context.AfterFunc(t.ctx, func() { _ = conn.Close() })}, nil
}

// dialedConn is a connection memberlist dialed, closed early if the Conn
// closes first.
type dialedConn struct {
	net.Conn
	stop func() bool
}

func (c *dialedConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// DialAddressTimeout is memberlist.NodeAwareTransport's.
func (t *netTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// Send sends b on Inner and relays it to every node of another site. It
// fails only when every way failed (or there is no way and Inner failed).
func (c *Conn) Send(b []byte) error {
	if err := c.check(b); err != nil {
		return err
	}
	var innerErr error
	if c.cfg.Inner != nil {
		innerErr = c.cfg.Inner.Send(b)
	}
	remote := *c.remote.Load()
	var relayErr error
	relayed := 0
	for _, dst := range remote {
		if err := c.sendRelay(b, dst); err != nil {
			relayErr = err
			continue
		}
		relayed++
	}
	switch {
	case c.closed.Load() && (innerErr != nil || relayErr != nil):
		return closedError()
	case relayed > 0 || (innerErr == nil && relayErr == nil):
		if innerErr != nil {
			c.log.Debug("send on Inner failed; relayed", "error", innerErr)
		}
		if relayErr != nil {
			c.log.Debug("relay failed to some nodes", "error", relayErr)
		}
		return nil
	case c.cfg.Inner != nil && innerErr == nil:
		c.log.Debug("relay failed to every node", "error", relayErr)
		return nil
	}
	return fmt.Errorf("memberlist: send: %w", errors.Join(innerErr, relayErr))
}

// SendTo sends b to one member: through the relay socket when dst is a
// node's relay address (the source of a datagram relayed to us), or when
// there is no Inner; through Inner otherwise.
func (c *Conn) SendTo(b []byte, dst netip.AddrPort) error {
	if err := c.check(b); err != nil {
		return err
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	var err error
	if c.cfg.Inner == nil || c.isRelay(dst) {
		err = c.sendRelay(b, dst)
	} else {
		err = c.cfg.Inner.SendTo(b, dst)
	}
	if err != nil && c.closed.Load() {
		return closedError()
	}
	if err != nil {
		return fmt.Errorf("memberlist: send to %v: %w", dst, err)
	}
	return nil
}

func (c *Conn) check(b []byte) error {
	if c.closed.Load() {
		return closedError()
	}
	if len(b) > c.cfg.MaxDatagram {
		return fmt.Errorf("memberlist: %d-byte datagram, at most %d: %w", len(b), c.cfg.MaxDatagram, transport.ErrTooLarge)
	}
	return nil
}

func closedError() error { return fmt.Errorf("memberlist: %w", transport.ErrClosed) }

func (c *Conn) sendRelay(b []byte, dst netip.AddrPort) error {
	_, err := c.relay.WriteToUDPAddrPort(b, dst)
	if err != nil {
		c.stats.relayErrors.Add(1)
		return err
	}
	c.stats.relaySent.Add(1)
	return nil
}

func (c *Conn) isRelay(dst netip.AddrPort) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.relays[dst]
	return ok
}

// leftGrace is how long datagrams from the relay address of a node that
// left are still taken: memberlist's news of a leave can be read before
// the goodbyes the node relayed just before it, which would otherwise be
// dropped and turn each goodbye into a failure detected seconds later.
const leftGrace = 5 * time.Second

// relaysFrom reports whether a datagram from src comes from a node's relay
// address: of a node memberlist knows alive, or of one that left less than
// leftGrace ago.
func (c *Conn) relaysFrom(src netip.AddrPort) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.relays[src]; ok {
		return true
	}
	at, ok := c.gone[src]
	return ok && time.Since(at) <= leftGrace
}

// Receive returns the next datagram heard on Inner or relayed by another
// node. A relayed datagram's Src is the relay address of the node that
// sent it, and its IfIndex 0.
func (c *Conn) Receive(buf []byte) (transport.Packet, error) {
	if c.closed.Load() {
		return transport.Packet{}, closedError()
	}
	select {
	case it := <-c.queue:
		if it.err != nil {
			return transport.Packet{}, it.err
		}
		if len(it.data) > len(buf) {
			return transport.Packet{}, fmt.Errorf("memberlist: %d-byte datagram from %v into a %d-byte buffer: %w",
				len(it.data), it.src, len(buf), transport.ErrTruncated)
		}
		return transport.Packet{N: copy(buf, it.data), Src: it.src, IfIndex: it.ifIndex}, nil
	case <-c.ctx.Done():
		return transport.Packet{}, closedError()
	}
}

// deliver queues it for Receive, waiting while the queue is full. It
// reports false when the Conn is closing.
func (c *Conn) deliver(it item) bool {
	select {
	case c.queue <- it:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// readRelay receives relayed datagrams until Close. It hands Receive only
// those whose source is the relay address of a node memberlist knows
// alive, and drops and counts the rest.
func (c *Conn) readRelay() {
	defer c.wg.Done()
	buf := make([]byte, readBuffer)
	for {
		n, src, err := c.relay.ReadFromUDPAddrPort(buf)
		if err != nil {
			if c.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			c.log.Debug("relay receive failed", "error", err)
			continue
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		if !c.relaysFrom(src) {
			// Only nodes memberlist knows relay to us: anything else on
			// this socket is a forgery, or a node we do not know yet
			// (its next announcement comes after memberlist's gossip).
			c.stats.relayDropped.Add(1)
			c.log.Trace("dropped a datagram from an unknown relay address", "from", src, "bytes", n)
			continue
		}
		c.stats.relayReceived.Add(1)
		if !c.deliver(item{data: slices.Clone(buf[:n]), src: src}) {
			return
		}
	}
}

// readInner receives from Inner until it is closed.
func (c *Conn) readInner() {
	defer c.wg.Done()
	buf := make([]byte, readBuffer)
	for {
		p, err := c.cfg.Inner.Receive(buf)
		if errors.Is(err, net.ErrClosed) {
			if c.ctx.Err() == nil {
				c.log.Warn("Inner was closed by someone else; receiving only relayed datagrams", "error", err)
			}
			return
		}
		if err == nil && p.Refused {
			continue // a refusal (transport.Packet.Refused) is no datagram; not passed on
		}
		it := item{err: err}
		if err == nil {
			it = item{data: slices.Clone(buf[:p.N]), src: p.Src, ifIndex: p.IfIndex}
		}
		if !c.deliver(it) {
			return
		}
	}
}

// joinLoop joins the seeds once, closes first, then tries again every
// RejoinInterval the seeds that are not members.
func (c *Conn) joinLoop(first chan<- struct{}) {
	defer c.wg.Done()
	c.join(c.seeds(false))
	close(first)
	if c.cfg.RejoinInterval < 0 || len(c.cfg.Seeds) == 0 {
		return
	}
	t := time.NewTicker(c.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			if seeds := c.seeds(true); len(seeds) > 0 {
				c.join(seeds)
			}
		}
	}
}

// seeds returns the seeds to join: all but this node, or, with missing,
// only those that are not alive members. A seed given by name is always
// included: it may stand for any address.
func (c *Conn) seeds(missing bool) []string {
	known := map[netip.AddrPort]bool{c.advertise: true}
	if missing {
		for _, n := range c.ml.Members() {
			if a, ok := netip.AddrFromSlice(n.Addr); ok {
				known[netip.AddrPortFrom(a.Unmap(), n.Port)] = true
			}
		}
	}
	var out []string
	for _, s := range c.cfg.Seeds {
		s = strings.TrimSpace(s)
		if ap, err := c.parseSeed(s); err == nil && known[ap] {
			continue
		}
		out = append(out, s)
	}
	return out
}

// parseSeed parses a seed given as an IP address, with or without a port
// (Bind's port by default).
func (c *Conn) parseSeed(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a.Unmap(), c.bindPort), nil
}

func (c *Conn) join(seeds []string) {
	if len(seeds) == 0 || c.ctx.Err() != nil {
		return
	}
	c.stats.joins.Add(1)
	n, err := c.ml.Join(seeds)
	if err != nil && n == 0 {
		c.stats.joinErrors.Add(1)
		if c.ctx.Err() == nil {
			c.log.Warn("no seed answered; trying again later", "seeds", seeds, "error", err, "retry", c.cfg.RejoinInterval)
		}
		return
	}
	c.log.Debug("joined", "seeds", seeds, "reached", n, "nodes", c.ml.NumMembers())
}

// nodeChanged records what memberlist says of a node. It runs under
// memberlist's locks: it must not call memberlist.
func (c *Conn) nodeChanged(n *memberlist.Node, alive bool) {
	if n == nil || n.Name == c.name {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for a, at := range c.gone {
		if now.Sub(at) > leftGrace {
			delete(c.gone, a)
		}
	}
	if old, ok := c.nodes[n.Name]; ok {
		delete(c.relays, old.Relay)
		delete(c.nodes, n.Name)
		if !alive {
			c.gone[old.Relay] = now
		}
	}
	if alive {
		addr, ok := netip.AddrFromSlice(n.Addr)
		m, err := parseMeta(n.Meta)
		switch {
		case !ok:
			c.log.Debug("ignoring a node without an address", "node", n.Name)
		case err != nil:
			c.stats.badMeta.Add(1)
			c.log.Debug("ignoring a node", "node", n.Name, "error", err)
		default:
			addr = addr.Unmap()
			node := Node{
				Name:   n.Name,
				Addr:   netip.AddrPortFrom(addr, n.Port),
				Relay:  netip.AddrPortFrom(addr, m.relayPort),
				Site:   m.site,
				Remote: m.site == "" || c.cfg.Site == "" || m.site != c.cfg.Site,
			}
			c.nodes[n.Name] = node
			c.relays[node.Relay] = struct{}{}
			delete(c.gone, node.Relay)
		}
	}
	remote := make([]netip.AddrPort, 0, len(c.nodes))
	for _, name := range slices.Sorted(maps.Keys(c.nodes)) {
		if node := c.nodes[name]; node.Remote {
			remote = append(remote, node.Relay)
		}
	}
	c.remote.Store(&remote)
	c.log.Debug("node changed", "node", n.Name, "alive", alive, "remote", len(remote))
}

// Nodes returns the other nodes known alive whose metadata parsed, sorted
// by name.
func (c *Conn) Nodes() []Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.SortedFunc(maps.Values(c.nodes), func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
}

// Name returns this node's memberlist name.
func (c *Conn) Name() string { return c.name }

// Addr returns the memberlist address other nodes reach this one at: what
// they give as a seed.
func (c *Conn) Addr() netip.AddrPort { return c.advertise }

// RelayAddr returns the address this node receives relayed datagrams at,
// and relays its own from: their Src as other members see it.
func (c *Conn) RelayAddr() netip.AddrPort { return c.relayAddr }

// Stats returns a snapshot of the Conn's counters.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	nodes := len(c.nodes)
	c.mu.Unlock()
	return Stats{
		Nodes:         nodes,
		Remote:        len(*c.remote.Load()),
		RelaySent:     c.stats.relaySent.Load(),
		RelayErrors:   c.stats.relayErrors.Load(),
		RelayReceived: c.stats.relayReceived.Load(),
		RelayDropped:  c.stats.relayDropped.Load(),
		BadMeta:       c.stats.badMeta.Load(),
		Joins:         c.stats.joins.Load(),
		JoinErrors:    c.stats.joinErrors.Load(),
	}
}

// Close leaves the memberlist cluster (bounded by LeaveTimeout), stops
// memberlist, closes the relay socket and Inner, and waits for every
// goroutine the Conn started. It is idempotent; later calls return the
// first call's result. Memberlist's own goroutines end shortly after; the
// Conn's delegates ignore whatever they still report.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		var errs []error
		if c.cfg.LeaveTimeout > 0 {
			if err := c.ml.Leave(c.cfg.LeaveTimeout); err != nil {
				c.log.Debug("memberlist leave", "error", err)
			}
		}
		c.cancel()
		if err := c.ml.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("memberlist: shutdown: %w", err))
		}
		if err := c.relay.Close(); err != nil {
			errs = append(errs, fmt.Errorf("memberlist: closing the relay socket: %w", err))
		}
		if c.cfg.Inner != nil {
			if err := c.cfg.Inner.Close(); err != nil {
				errs = append(errs, fmt.Errorf("memberlist: closing Inner: %w", err))
			}
		}
		c.wg.Wait()
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// delegate is memberlist's Delegate: it tells the cluster this node's
// metadata and nothing else (datagrams travel on the relay socket).
type delegate struct{ c *Conn }

func (d delegate) NodeMeta(limit int) []byte {
	if len(d.c.meta) > limit {
		return nil // cannot happen: Validate bounds the site
	}
	return d.c.meta
}
func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

// events is memberlist's EventDelegate: it keeps the Conn's node table.
type events struct{ c *Conn }

func (e events) NotifyJoin(n *memberlist.Node)   { e.c.nodeChanged(n, true) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.c.nodeChanged(n, false) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.c.nodeChanged(n, true) }
