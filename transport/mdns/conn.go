package mdns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/transport"
)

var (
	_ transport.Transport  = (*Conn)(nil)
	_ transport.LinkSender = (*Conn)(nil)
)

var (
	// ErrInvalidConfig wraps every problem Config.Validate reports.
	ErrInvalidConfig = errors.New("mdns: invalid config")
	// ErrNoInterface reports a send with no interface to send on: none
	// qualifies (see Config.Interfaces), or the link given to SendVia is
	// not in use.
	ErrNoInterface = errors.New("mdns: no interface to send on")
)

// Conn is a Transport over mDNS and DNS-SD: it publishes the pir member
// whose messages it is given as a DNS-SD service instance, browses its
// service type, and hands Receive pir messages synthesized from the
// instances it finds. Bytes that are not a pir message of its group are
// carried opaquely. The package doc describes the mapping.
type Conn struct {
	cfg       Config
	log       hclog.Logger
	svc       serviceType
	sub       string    // the group's subtype name, "_G._sub._svc._proto.local."
	browse    string    // the name browsed: the subtype, or the service type
	fams      []*family // the address families in use
	allGroups bool      // deliver pir members of every group (Config.AllGroups with a Service)

	in        chan inbound  // readers -> engine
	out       chan delivery // readers (raw) and engine (synthesized) -> Receive
	cmds      chan command  // Send, SendTo, SendVia, Close -> engine
	rescanned chan struct{} // rescans -> engine, when links changed
	done      chan struct{} // closed by Close

	rescanMu sync.Mutex // serialises rescans
	mu       sync.Mutex // guards links; each *iface is immutable once stored
	links    map[int]*iface

	st          counters
	warnedGroup atomic.Bool
	e           engine // owned by the engine goroutine

	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// family is the pair of sockets of one address family.
type family struct {
	v6    bool
	group netip.AddrPort // 224.0.0.251 or ff02::fb, and the port
	mc    *socket        // the mDNS port, shared: joins the group, sends responses and queries
	tx    *socket        // an ephemeral port: sends and receives raw datagrams
}

// inbound is a received mDNS message, from a reader to the engine.
type inbound struct {
	msg     *message
	src     netip.AddrPort
	ifIndex int
	v6      bool
	at      time.Time
	direct  bool // sent by unicast to the ephemeral port: an answer to a one-shot query
}

// delivery is a datagram for Receive: raw bytes received, or a
// synthesized pir message. b is owned by the delivery.
type delivery struct {
	b       []byte
	src     netip.AddrPort
	dst     netip.Addr // invalid for a synthesized message
	ifIndex int
}

// outQueue is the number of datagrams waiting for Receive. The engine
// drops (and counts) synthesized messages when it is full, so that a
// caller that does not receive never stalls the responder.
const outQueue = 256

// New opens a Conn: it binds the mDNS port on every family in use, joins
// the mDNS group on the interfaces cfg chooses, starts answering queries
// and browsing the service type. The member is published at the first
// Send of one of its messages.
func New(cfg Config) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	explicit := cfg.Service != ""
	cfg = cfg.withDefaults()
	svc, _ := parseServiceType(cfg.Service)
	c := &Conn{
		cfg:       cfg,
		svc:       svc,
		sub:       escapeLabel(groupSubtype(cfg.Group)) + "._sub." + svc.fqdn(),
		in:        make(chan inbound, 64),
		out:       make(chan delivery, outQueue),
		cmds:      make(chan command),
		rescanned: make(chan struct{}, 1),
		done:      make(chan struct{}),
		links:     make(map[int]*iface),
	}
	c.browse = c.sub
	if explicit {
		c.browse = svc.fqdn()
		c.allGroups = cfg.AllGroups
	}
	c.log = cfg.Logger.Named("mdns").With("service", svc.String())

	var v4, v6 bool
	switch cfg.Network {
	case "udp4":
		v4 = true
	case "udp6":
		v6 = true
	default:
		v4, v6 = true, true
	}
	for _, is6 := range []bool{false, true} {
		if is6 && !v6 || !is6 && !v4 {
			continue
		}
		f, err := openFamily(is6, cfg)
		if err != nil {
			if is6 && cfg.Network == "" {
				c.log.Debug("IPv6 unavailable; using IPv4 only", "error", err)
				continue
			}
			c.closeSockets()
			return nil, fmt.Errorf("mdns: %w", err)
		}
		c.fams = append(c.fams, f)
	}
	if err := c.rescan(); err != nil {
		c.closeSockets()
		return nil, err
	}
	c.warnMissing()
	c.e.init(c, time.Now())

	for _, f := range c.fams {
		c.wg.Add(2)
		go c.read(f, f.mc)
		go c.read(f, f.tx)
	}
	c.wg.Add(1)
	go c.run()
	if cfg.RescanInterval > 0 {
		c.wg.Add(1)
		go c.rescanLoop(cfg.RescanInterval)
	}
	c.log.Debug("listening", "links", c.Links(), "browse", c.browse)
	return c, nil
}

func openFamily(v6 bool, cfg Config) (*family, error) {
	f := &family{v6: v6, group: netip.AddrPortFrom(GroupV4, cfg.Port)}
	name := "IPv4"
	if v6 {
		f.group = netip.AddrPortFrom(GroupV6, cfg.Port)
		name = "IPv6"
	}
	var err error
	if f.mc, err = listen(v6, cfg.Port, true, !cfg.DisableLoopback); err != nil {
		return nil, fmt.Errorf("%s: listening on port %d: %w", name, cfg.Port, err)
	}
	if f.tx, err = listen(v6, 0, false, !cfg.DisableLoopback); err != nil {
		_ = f.mc.close()
		return nil, fmt.Errorf("%s: opening the raw socket: %w", name, err)
	}
	return f, nil
}

func (c *Conn) closeSockets() error {
	var errs []error
	for _, f := range c.fams {
		errs = append(errs, f.mc.close(), f.tx.close())
	}
	return errors.Join(errs...)
}

func (c *Conn) warnMissing() {
	for _, name := range c.cfg.Interfaces {
		if _, err := net.InterfaceByName(name); err != nil {
			c.log.Warn("interface not found; it will be used once it appears", "interface", name)
		}
	}
}

// family returns the Conn's family of v6, or nil.
func (c *Conn) family(v6 bool) *family {
	for _, f := range c.fams {
		if f.v6 == v6 {
			return f
		}
	}
	return nil
}

// Browse returns the DNS name the Conn browses: the group's subtype of
// the service type, or the service type itself when Config.Service is
// set.
func (c *Conn) Browse() string { return c.browse }

// Instance returns the full DNS name the member is published under, after
// any renaming a conflict caused, or "" while nothing is published.
func (c *Conn) Instance() string {
	r := make(chan string, 1)
	if err := c.do(command{kind: cmdInstance, name: r}); err != nil {
		return ""
	}
	return <-r
}

// LocalAddr reports the address of the socket raw datagrams are sent
// from, for one family: the wildcard address and an ephemeral port. It is
// the source of every raw datagram, so a peer can answer with SendTo.
// pir messages are sent from the mDNS port.
func (c *Conn) LocalAddr(v6 bool) netip.AddrPort {
	if f := c.family(v6); f != nil {
		return f.tx.localAddr()
	}
	return netip.AddrPort{}
}

// Send publishes, refreshes or withdraws the member b describes when b is
// a pir message (codec/pipe) of the Conn's group: an Announce or Query
// publishes it (probing for a unique name first) or updates its records,
// a Query also asks who is there, a passive Query only asks, and a Goodbye
// withdraws the records with TTL 0. Any other bytes, up to MaxRaw, are
// multicast opaquely: pir's messages about another member (confirmations,
// evidence, obituaries) among them. Send fails only when the Conn is closed, b is too
// large, or the datagram could be sent on no interface.
func (c *Conn) Send(b []byte) error {
	if c.isClosed() {
		return fmt.Errorf("mdns: send: %w", transport.ErrClosed)
	}
	var m codec.Message
	if ok, err := c.ours(b, &m); err != nil {
		return err
	} else if ok {
		return c.do(command{kind: cmdSend, msg: m})
	}
	return c.sendRaw(b, nil, netip.AddrPort{})
}

// SendVia is Send on one link: a pir message whose URIs name the link's
// address is published with the Conn's host name in its place (see the
// package doc), and raw bytes are multicast on that link only.
func (c *Conn) SendVia(b []byte, l transport.Link) error {
	if c.isClosed() {
		return fmt.Errorf("mdns: send: %w", transport.ErrClosed)
	}
	var m codec.Message
	if ok, err := c.ours(b, &m); err != nil {
		return err
	} else if ok {
		return c.do(command{kind: cmdSend, msg: m, via: &l})
	}
	return c.sendRaw(b, &l, netip.AddrPort{})
}

// SendTo sends to dst by unicast: for a pir Announce or Query of the
// Conn's group, the member's records as an mDNS response (from the mDNS
// port); for anything else, b opaquely (from LocalAddr).
func (c *Conn) SendTo(b []byte, dst netip.AddrPort) error {
	if c.isClosed() {
		return fmt.Errorf("mdns: send: %w", transport.ErrClosed)
	}
	if !dst.IsValid() || dst.Port() == 0 {
		return fmt.Errorf("mdns: send to %s: no address and port", dst)
	}
	var m codec.Message
	if ok, err := c.ours(b, &m); err != nil {
		return err
	} else if ok {
		return c.do(command{kind: cmdSendTo, msg: m, dst: dst})
	}
	return c.sendRaw(b, nil, dst)
}

// ours decodes b into m and reports whether it is a message of the
// Conn's group that publishes or withdraws its member. Other messages of
// Codec (about another member, or of another group) are carried opaquely;
// the first of another group is logged, since it is most likely a Conn
// configured with the wrong Group. Bytes that are not a message of Codec
// are carried opaquely with Config.Opaque, else refused with
// ErrNotMessage.
func (c *Conn) ours(b []byte, m *codec.Message) (bool, error) {
	if len(b) > MaxRaw {
		return false, nil // sendRaw refuses it
	}
	if err := (Codec{}).Decode(b, m); err != nil {
		if c.cfg.Opaque {
			return false, nil
		}
		return false, fmt.Errorf("%w (%d bytes): a Group over mDNS needs the Conn's codec (discovery.Config.Codec nil, or mdns.Codec{}); with another codec set mdns.Config.Opaque, and nothing is published as DNS-SD", ErrNotMessage, len(b))
	}
	switch m.Kind {
	case codec.Announce, codec.Query, codec.Goodbye:
	default:
		return false, nil // about another member: carried opaquely
	}
	if m.Group != c.cfg.Group {
		if c.warnedGroup.CompareAndSwap(false, true) {
			c.log.Warn("a pir message of another group is carried opaquely, not published", "group", m.Group, "conn_group", c.cfg.Group)
		}
		return false, nil
	}
	return true, nil
}

// sendRaw sends b opaquely: by unicast to dst when it is valid, else by
// multicast on link l, or on every link when l is nil.
func (c *Conn) sendRaw(b []byte, l *transport.Link, dst netip.AddrPort) error {
	if len(b) > MaxRaw {
		return fmt.Errorf("mdns: %d-byte datagram, at most %d: %w", len(b), MaxRaw, transport.ErrTooLarge)
	}
	pkt := appendRaw(make([]byte, 0, rawOverhead+len(b)), b)
	if dst.IsValid() {
		f := c.family(!dst.Addr().Unmap().Is4())
		if f == nil {
			return fmt.Errorf("mdns: send to %s: the address family is not in use", dst)
		}
		if err := f.tx.writeTo(pkt, c.zoned(dst)); err != nil {
			return c.sendErr(fmt.Errorf("mdns: send to %s: %w", dst, err))
		}
		return nil
	}
	var tries, fails int
	var errs []error
	for _, ln := range c.linkList() {
		if l != nil && ln.ifi.Index != l.Index {
			continue
		}
		for _, f := range c.fams {
			if !ln.on[famIndex(f.v6)] || l != nil && l.Addr.Unmap().Is4() == f.v6 {
				continue
			}
			tries++
			if err := f.tx.multicast(pkt, &ln.ifi, f.group); err != nil {
				fails++
				errs = append(errs, err)
				c.st.sendFailures.Add(1)
				c.log.Debug("send failed on one interface", "interface", ln.ifi.Name, "error", err)
			}
		}
	}
	switch {
	case c.isClosed():
		return fmt.Errorf("mdns: send: %w", transport.ErrClosed)
	case tries == 0:
		return fmt.Errorf("mdns: send: %w", ErrNoInterface)
	case fails == tries:
		return fmt.Errorf("mdns: send failed on every interface: %w", errors.Join(errs...))
	}
	return nil
}

// sendErr turns a send error into one wrapping transport.ErrClosed once
// the Conn is closed.
func (c *Conn) sendErr(err error) error {
	if c.isClosed() {
		return fmt.Errorf("mdns: send: %w", transport.ErrClosed)
	}
	return err
}

// Receive waits for a datagram and copies it into buf: a pir message
// synthesized from a DNS-SD instance (see the package doc), or an opaque
// datagram another Conn sent. A datagram longer than buf is dropped with
// an error wrapping transport.ErrTruncated. After Close it fails with an
// error wrapping transport.ErrClosed.
func (c *Conn) Receive(buf []byte) (transport.Packet, error) {
	select {
	case <-c.done:
		return transport.Packet{}, fmt.Errorf("mdns: receive: %w", transport.ErrClosed)
	default:
	}
	select {
	case <-c.done:
		return transport.Packet{}, fmt.Errorf("mdns: receive: %w", transport.ErrClosed)
	case d := <-c.out:
		if len(d.b) > len(buf) {
			return transport.Packet{}, fmt.Errorf("mdns: %d-byte datagram from %s into a %d-byte buffer: %w",
				len(d.b), d.src, len(buf), transport.ErrTruncated)
		}
		return transport.Packet{N: copy(buf, d.b), Src: d.src, IfIndex: d.ifIndex, Dst: d.dst}, nil
	}
}

// read is a reader goroutine: it reads datagrams from s, hands raw ones to
// Receive and mDNS messages to the engine, until s is closed.
func (c *Conn) read(f *family, s *socket) {
	defer c.wg.Done()
	buf := make([]byte, 1<<16)
	for {
		n, src, dst, ifIndex, err := s.readFrom(buf)
		if err != nil {
			if c.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			c.st.readErrors.Add(1)
			c.log.Debug("receive failed", "error", err)
			select {
			case <-time.After(10 * time.Millisecond): // don't spin on an error that repeats
			case <-c.done:
				return
			}
			continue
		}
		c.st.received.Add(1)
		if dst.IsMulticast() && dst.WithZone("") != f.group.Addr() {
			c.st.filtered.Add(1)
			continue
		}
		if n > MaxMessage+48 {
			c.st.oversize.Add(1)
			c.log.Trace("dropped an oversize message", "from", src, "bytes", n)
			continue
		}
		if p, ok := parseRaw(buf[:n]); ok {
			c.st.raw.Add(1)
			select {
			case c.out <- delivery{b: slices.Clone(p), src: src, dst: dst, ifIndex: ifIndex}:
			case <-c.done:
				return
			}
			continue
		}
		m, err := parseMessage(buf[:n])
		if err != nil {
			if errors.Is(err, errIgnored) {
				c.st.ignored.Add(1)
			} else {
				c.st.malformed.Add(1)
			}
			c.log.Trace("dropped a message", "from", src, "error", err)
			continue
		}
		if m.Bad > 0 {
			c.st.badRecords.Add(uint64(m.Bad))
			c.log.Trace("skipped records that do not parse", "from", src, "records", m.Bad)
		}
		select {
		case c.in <- inbound{msg: m, src: src, ifIndex: ifIndex, v6: f.v6, at: time.Now(), direct: s == f.tx && !dst.IsMulticast()}:
		case <-c.done:
			return
		}
	}
}

// Links reports the links the Conn sends on: its IPv4 links, then its
// IPv6 ones, each with the address a member advertises there.
func (c *Conn) Links() []transport.Link {
	var out []transport.Link
	for _, v6 := range []bool{false, true} {
		for _, l := range c.linkList() {
			if l.on[famIndex(v6)] {
				out = append(out, transport.Link{Index: l.ifi.Index, Name: l.ifi.Name, Addr: l.best[famIndex(v6)]})
			}
		}
	}
	return out
}

// linkList returns the links in use, by interface index.
func (c *Conn) linkList() []*iface {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*iface, 0, len(c.links))
	for _, l := range c.links {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b *iface) int { return a.ifi.Index - b.ifi.Index })
	return out
}

// link returns the link of interface index, or nil.
func (c *Conn) link(index int) *iface {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.links[index]
}

func (c *Conn) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// do hands a command to the engine goroutine and waits for its result.
func (c *Conn) do(cmd command) error {
	cmd.reply = make(chan error, 1)
	select {
	case c.cmds <- cmd:
	case <-c.done:
		return fmt.Errorf("mdns: %w", transport.ErrClosed)
	}
	select {
	case err := <-cmd.reply:
		return err
	case <-c.done:
		return fmt.Errorf("mdns: %w", transport.ErrClosed)
	}
}

// Close withdraws what the Conn published, with goodbyes, unless
// Config.SilentClose; then it closes the sockets, which unblocks Receive,
// and waits for the Conn's goroutines. It is idempotent; later calls
// return the first call's result.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		if !c.cfg.SilentClose {
			_ = c.do(command{kind: cmdClose})
		}
		close(c.done)
		err := c.closeSockets()
		c.wg.Wait()
		if err != nil {
			c.closeErr = fmt.Errorf("mdns: close: %w", err)
		}
		c.log.Debug("closed")
	})
	return c.closeErr
}

// Stats counts what a Conn received, dropped and did without reporting
// it as an error.
type Stats struct {
	// Received counts datagrams read from the sockets.
	Received uint64
	// Raw counts opaque datagrams received.
	Raw uint64
	// Malformed counts datagrams that are not DNS messages.
	Malformed uint64
	// BadRecords counts records of the types the transport uses (PTR,
	// SRV, TXT, A, AAAA) left out of a message because their data does
	// not fit their type: the rest of the message is used. Records of
	// other types are skipped unread.
	BadRecords uint64
	// Ignored counts DNS messages mDNS ignores: an opcode or response
	// code other than zero (RFC 6762 §18), a response from a port other
	// than the mDNS port (§11).
	Ignored uint64
	// Oversize counts messages larger than 9000 bytes.
	Oversize uint64
	// OffLink counts messages whose source is not on the link they
	// arrived on (RFC 6762 §11).
	OffLink uint64
	// Filtered counts datagrams sent to another multicast group.
	Filtered uint64
	// ReadErrors counts failed socket reads.
	ReadErrors uint64
	// Queries counts queries received; Answered those the Conn answered,
	// by multicast or unicast.
	Queries, Answered uint64
	// Suppressed counts answers left out because the querier listed them
	// as known answers (RFC 6762 §7.1) or they were multicast less than a
	// second before (§6).
	Suppressed uint64
	// Conflicts counts name conflicts: a probe answered, a probe lost to a
	// simultaneous one, or another responder's records for our names.
	Conflicts uint64
	// Synthesized counts pir messages made from DNS-SD instances and
	// handed to Receive, heartbeats included; Goodbyes the goodbyes among
	// them.
	Synthesized, Goodbyes uint64
	// Dropped counts synthesized messages dropped because Receive was not
	// keeping up, or too large even without metadata.
	Dropped uint64
	// CacheFull counts records not cached because the cache was full of
	// records of delivered instances; Evicted the records removed from a
	// full cache to make room (see the package doc).
	CacheFull, Evicted uint64
	// Refuted counts goodbyes not delivered because the instance answered
	// the check that follows a goodbye (see the package doc).
	Refuted uint64
	// Stale counts records of an instance whose goodbye was delivered that
	// did not bring it back: it did not answer the check they started
	// (python-zeroconf sends answers it queued before its goodbye after it).
	Stale uint64
	// SendFailures counts sends that failed on one interface.
	SendFailures uint64
}

type counters struct {
	received, raw, malformed, badRecords, ignored, oversize, offLink, filtered, readErrors atomic.Uint64
	queries, answered, suppressed, conflicts                                               atomic.Uint64
	synthesized, goodbyes, dropped, cacheFull, evicted, refuted, stale, sendFailures       atomic.Uint64
}

// Stats reports the Conn's counters.
func (c *Conn) Stats() Stats {
	s := &c.st
	return Stats{
		Received: s.received.Load(), Raw: s.raw.Load(), Malformed: s.malformed.Load(), BadRecords: s.badRecords.Load(),
		Ignored: s.ignored.Load(), Oversize: s.oversize.Load(), OffLink: s.offLink.Load(),
		Filtered: s.filtered.Load(), ReadErrors: s.readErrors.Load(),
		Queries: s.queries.Load(), Answered: s.answered.Load(), Suppressed: s.suppressed.Load(),
		Conflicts: s.conflicts.Load(), Synthesized: s.synthesized.Load(), Goodbyes: s.goodbyes.Load(),
		Dropped: s.dropped.Load(), CacheFull: s.cacheFull.Load(), Evicted: s.evicted.Load(),
		Refuted: s.refuted.Load(), Stale: s.stale.Load(), SendFailures: s.sendFailures.Load(),
	}
}
