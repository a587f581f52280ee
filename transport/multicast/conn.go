package multicast

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/pirlan/pir/internal/mcast"
	"github.com/pirlan/pir/transport"
)

var (
	_ transport.Transport       = (*Conn)(nil)
	_ transport.LinkSender      = (*Conn)(nil)
	_ transport.UniqueUnicast   = (*Conn)(nil)
	_ transport.RefusalReporter = (*Conn)(nil)
)

// ErrNoInterface reports a send with no interface to send on: none
// qualifies (see Config.Interfaces), or the link given to SendVia is not in
// use.
var ErrNoInterface = errors.New("multicast: no interface to send on")

// Conn is a Transport over UDP multicast of one address family, on every
// chosen interface. It uses two sockets: one bound to the group port,
// joined to the group on each interface, that receives the group's
// datagrams; and one bound to an ephemeral port that sends them and
// receives unicast, so that a reply to a datagram's source reaches exactly
// the member that sent it, even when several share the group port on one
// host.
type Conn struct {
	cfg   Config
	log   hclog.Logger
	v6    bool
	group netip.AddrPort
	mc    *mcast.Socket     // bound to the group port; receives the group
	tx    *mcast.Socket     // ephemeral port; sends everything, receives unicast
	links *mcast.Membership // mc's membership of the group: the links in use

	rx   chan datagram // from the reader goroutines to Receive
	done chan struct{} // closed by Close

	afterRescan func() // testHookRescanned when the Conn was made

	refusals bool // tx reports refusals (Linux)

	sendFailures  atomic.Uint64
	filtered      atomic.Uint64
	refused       atomic.Uint64
	errorsDropped atomic.Uint64

	wg        sync.WaitGroup
	closeOnce sync.Once
}

// testHookRescanned, when a test sets it before New, is called after each
// automatic rescan of the Conns made while it is set.
var testHookRescanned func()

// Stats counts what a Conn dropped or failed to do without reporting an
// error.
type Stats struct {
	// SendFailures counts sends that failed on one interface while the
	// datagram went out on another.
	SendFailures uint64
	// Filtered counts received datagrams dropped because they were sent to
	// another multicast group on the same port.
	Filtered uint64
	// Refused counts the refusals reported as packets with Refused set
	// (see Conn.ReportsRefusals).
	Refused uint64
	// ErrorsDropped counts the other errors the kernel reported about
	// datagrams the Conn sent, read and dropped: ICMP errors sent by a
	// router rather than the destination (time exceeded, a network or host
	// unreachable), packet too big, errors of local origin.
	ErrorsDropped uint64
}

// New opens a Conn, joins the group on the interfaces cfg chooses and
// starts receiving. It succeeds with no interface at all: Send then fails
// with ErrNoInterface until one appears.
func New(cfg Config) (*Conn, error) {
	return newConn(cfg, make(chan datagram))
}

// newConn opens a Conn whose readers deliver to rx, which a Dual shares
// between two Conns.
func newConn(cfg Config, rx chan datagram) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Conn{
		cfg:   cfg,
		v6:    cfg.Network == "udp6",
		group: cfg.Group,
		rx:    rx,
		done:  make(chan struct{}),

		afterRescan: testHookRescanned,
	}
	c.log = cfg.Logger.Named("multicast").With("group", c.group.String())

	var err error
	if c.mc, err = mcast.Listen(c.v6, c.group.Port(), true); err != nil {
		return nil, fmt.Errorf("multicast: listening on group port %d: %w", c.group.Port(), err)
	}
	if c.tx, err = mcast.Listen(c.v6, 0, false); err != nil {
		_ = c.mc.Close()
		return nil, fmt.Errorf("multicast: opening the sending socket: %w", err)
	}
	if err := c.tx.SetMulticastOptions(cfg.HopLimit, !cfg.DisableLoopback); err != nil {
		_ = c.mc.Close()
		_ = c.tx.Close()
		return nil, fmt.Errorf("multicast: %w", err)
	}
	c.refusals = c.tx.ReportRefusals()
	c.links = mcast.NewMembership(c.mc, c.group.Addr(), cfg.Interfaces, c.log)
	if err := c.rescan(); err != nil {
		_ = c.mc.Close()
		_ = c.tx.Close()
		return nil, err
	}
	c.warnMissing()

	c.wg.Add(2)
	go c.read(c.mc, "group")
	go c.read(c.tx, "unicast")
	if cfg.RescanInterval > 0 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			mcast.RescanLoop(c.done, cfg.RescanInterval, c.log, c.periodicRescan)
		}()
	}
	c.log.Debug("listening", "links", c.Links(), "unicast", c.LocalAddr())
	return c, nil
}

// warnMissing logs the interfaces named in the Config that do not exist.
func (c *Conn) warnMissing() {
	if len(c.cfg.Interfaces) == 0 {
		return
	}
	for _, name := range c.cfg.Interfaces {
		if _, err := net.InterfaceByName(name); err != nil {
			c.log.Warn("interface not found; it will be used once it appears", "interface", name)
		}
	}
}

// Group reports the group address and port.
func (c *Conn) Group() netip.AddrPort { return c.group }

// LocalAddr reports the address of the socket that sends and receives
// unicast: the wildcard address and an ephemeral port. It is the port of
// every datagram's source, so a peer can answer with SendTo.
func (c *Conn) LocalAddr() netip.AddrPort { return c.tx.LocalAddr() }

// Stats reports the Conn's counters.
func (c *Conn) Stats() Stats {
	return Stats{
		SendFailures:  c.sendFailures.Load(),
		Filtered:      c.filtered.Load(),
		Refused:       c.refused.Load(),
		ErrorsDropped: c.errorsDropped.Load(),
	}
}

// UnicastIsUnique reports true: every datagram leaves from the Conn's own
// ephemeral port (LocalAddr), which closes with the Conn.
func (c *Conn) UnicastIsUnique() bool { return true }

// ReportsRefusals reports whether Receive delivers refusals: a Packet with
// Refused set and Src the destination, when a datagram sent with SendTo
// (or Send, to a unicast address) comes back as an ICMP port unreachable
// from that destination. It is true on Linux, where the unicast socket
// has IP_RECVERR (IPV6_RECVERR); other platforms report ICMP errors only
// to connected sockets, and it is false there.
func (c *Conn) ReportsRefusals() bool { return c.refusals }

// Send multicasts b to the group on every link. It fails only when no
// interface qualifies (ErrNoInterface) or the send failed on every link;
// failures on some links are logged at Debug and counted in Stats.
func (c *Conn) Send(b []byte) error {
	if err := c.checkSend(b); err != nil {
		return err
	}
	links := c.links.Links()
	if len(links) == 0 {
		return fmt.Errorf("multicast: send to %s: %w", c.group, ErrNoInterface)
	}
	var errs []error
	for _, l := range links {
		// From the link's address, as SendVia sends: receivers know a
		// member by the source of its announcements, and take its other
		// multicasts (vouches, obituaries) only from that address.
		if err := c.sendFrom(b, l, l.Addr(c.v6)); err != nil {
			if c.closed() {
				return fmt.Errorf("multicast: send: %w", transport.ErrClosed)
			}
			c.sendFailures.Add(1)
			c.log.Debug("send failed on one interface", "interface", l.Name, "error", err)
			errs = append(errs, err)
		}
	}
	if len(errs) == len(links) {
		return fmt.Errorf("multicast: send to %s failed on every interface: %w", c.group, errors.Join(errs...))
	}
	return nil
}

// SendVia multicasts b to the group on one link, which must be in use:
// one of Links, matched by index.
func (c *Conn) SendVia(b []byte, l transport.Link) error {
	if err := c.checkSend(b); err != nil {
		return err
	}
	cur, ok := c.links.Link(l.Index)
	if !ok {
		return fmt.Errorf("multicast: send via %s (index %d): %w", l.Name, l.Index, ErrNoInterface)
	}
	if err := c.sendFrom(b, cur, l.Addr); err != nil {
		if c.closed() {
			return fmt.Errorf("multicast: send: %w", transport.ErrClosed)
		}
		return fmt.Errorf("multicast: send via %s: %w", cur.Name, err)
	}
	return nil
}

// sendFrom multicasts b on one link from the source address src, where the
// platform takes a source in a control message (IP_PKTINFO,
// IPV6_PKTINFO): the kernel would otherwise pick the link-local address
// for ff02:: and the interface's primary address for IPv4, and receivers
// check that an announcement's address is its source. Where it cannot, or
// the address is no longer there, the kernel picks.
func (c *Conn) sendFrom(b []byte, l mcast.Interface, src netip.Addr) error {
	src = src.Unmap().WithZone("")
	if !src.IsValid() || src.IsUnspecified() || src.Is4() == c.v6 {
		return c.sendOn(b, l)
	}
	err := c.tx.WriteFrom(b, c.group, src, l.Index)
	if err == nil {
		return nil
	}
	c.log.Trace("send with a source address failed", "interface", l.Name, "src", src, "error", err)
	return c.sendOn(b, l)
}

// SendTo sends b to dst by unicast, from the socket whose address is
// LocalAddr. An IPv6 link-local dst needs its zone.
func (c *Conn) SendTo(b []byte, dst netip.AddrPort) error {
	if err := c.checkSend(b); err != nil {
		return err
	}
	to, err := c.unicastDst(dst)
	if err != nil {
		return err
	}
	if err := c.tx.WriteTo(b, to); err != nil {
		if c.closed() {
			return fmt.Errorf("multicast: send: %w", transport.ErrClosed)
		}
		return fmt.Errorf("multicast: send to %s: %w", dst, err)
	}
	return nil
}

// ConfirmNeighbour tells the kernel that dst, a unicast destination of
// this Conn's family, has just answered (transport.NeighbourConfirmer):
// its neighbour entry stays reachable without a probe. It fails where the
// platform has no such call (only Linux has).
func (c *Conn) ConfirmNeighbour(dst netip.AddrPort) error {
	to, err := c.unicastDst(dst)
	if err != nil {
		return err
	}
	return c.tx.ConfirmNeighbour(to)
}

// unicastDst is dst as the Conn's socket takes it: unmapped for IPv4, its
// zone an interface index. It fails for a destination of the other family
// or without a port.
func (c *Conn) unicastDst(dst netip.AddrPort) (netip.AddrPort, error) {
	addr := dst.Addr()
	if !c.v6 {
		addr = addr.Unmap()
	}
	if !addr.IsValid() || addr.Is6() != c.v6 || dst.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("multicast: send to %s: not a %s destination", dst, c.cfg.Network)
	}
	if zone := addr.Zone(); zone != "" {
		addr = addr.WithZone(mcast.ZoneIndex(zone, c.links.IndexOf))
	}
	return netip.AddrPortFrom(addr, dst.Port()), nil
}

func (c *Conn) checkSend(b []byte) error {
	if c.closed() {
		return fmt.Errorf("multicast: send: %w", transport.ErrClosed)
	}
	if len(b) > c.cfg.MaxDatagram {
		return fmt.Errorf("multicast: %d-byte datagram, at most %d: %w", len(b), c.cfg.MaxDatagram, transport.ErrTooLarge)
	}
	return nil
}

// sendOn multicasts b on one link.
func (c *Conn) sendOn(b []byte, l mcast.Interface) error {
	return c.tx.Multicast(b, &l.Interface, c.group)
}

// Receive waits for a datagram to the group or to LocalAddr and copies it
// into buf. A datagram longer than buf is dropped with an error wrapping
// transport.ErrTruncated. After Close it fails with an error wrapping
// transport.ErrClosed. Any other error comes from a socket read; receiving
// may go on after it, as after ErrTruncated. Where ReportsRefusals is
// true, it also returns refusals: a Packet with Refused set, N 0 and Src
// the address that refused; never an error.
func (c *Conn) Receive(buf []byte) (transport.Packet, error) {
	return receive(c.rx, c.done, buf)
}

// read is a reader goroutine: it reads datagrams from s and hands them to
// Receive until the socket is closed.
func (c *Conn) read(s *mcast.Socket, name string) {
	defer c.wg.Done()
	for {
		d := datagram{buf: getReadBuf()}
		d.n, d.src, d.dst, d.ifIndex, d.err = s.ReadFrom(*d.buf)
		dst := d.dst
		var qe *mcast.QueuedError
		if errors.As(d.err, &qe) {
			d.release()
			if !qe.Refused() {
				c.errorsDropped.Add(1)
				c.log.Trace("dropped an error about a sent datagram", "error", qe)
				continue
			}
			c.refused.Add(1)
			d = datagram{refused: true, src: qe.Dst}
		} else if d.err != nil {
			d.release()
			if c.closed() || errors.Is(d.err, net.ErrClosed) {
				return
			}
			d.err = fmt.Errorf("multicast: receive on the %s socket: %w", name, d.err)
		} else if !mcast.ForGroup(dst, c.group.Addr()) {
			// Another group on the same port: possible where the
			// socket cannot be limited to its own groups.
			c.filtered.Add(1)
			c.log.Trace("dropped a datagram to another group", "dst", dst, "src", d.src)
			d.release()
			continue
		}
		select {
		case c.rx <- d:
		case <-c.done:
			d.release()
			return
		}
	}
}

// Links reports the links the Conn currently sends on, by interface index.
func (c *Conn) Links() []transport.Link {
	links := c.links.Links()
	out := make([]transport.Link, len(links))
	for i, l := range links {
		out[i] = transport.Link{Index: l.Index, Name: l.Name, Addr: l.Addr(c.v6)}
	}
	return out
}

// Rescan checks the interfaces now rather than at the next automatic
// check (Config.RescanInterval): it joins the group on interfaces that
// appeared or came up, leaves it on those that went away, and updates the
// links' addresses.
func (c *Conn) Rescan() error {
	if c.closed() {
		return fmt.Errorf("multicast: rescan: %w", transport.ErrClosed)
	}
	return c.rescan()
}

func (c *Conn) rescan() error {
	ifs, err := mcast.Interfaces()
	if err != nil {
		return fmt.Errorf("multicast: listing interfaces: %w", err)
	}
	c.links.Update(ifs)
	return nil
}

// periodicRescan is a rescan of the automatic loop (mcast.RescanLoop).
func (c *Conn) periodicRescan() {
	if err := c.rescan(); err != nil {
		c.log.Debug("rescan failed", "error", err)
	}
	if c.afterRescan != nil {
		c.afterRescan()
	}
}

func (c *Conn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Close closes the sockets, which unblocks Receive, and waits for the
// Conn's goroutines. It is idempotent; only the first call reports an
// error.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.done)
		err = errors.Join(c.mc.Close(), c.tx.Close())
		c.wg.Wait()
		if err != nil {
			err = fmt.Errorf("multicast: close: %w", err)
		}
	})
	return err
}
