package mem

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/transport"
)

// Port is the UDP port of every endpoint's address.
const Port = 7946

// MaxUDP is the largest Config.MaxDatagram accepted: the largest UDP payload
// over IPv4 (65535 - 20 IPv4 header - 8 UDP header).
const MaxUDP = 65507

// firstAddr is the address before the first endpoint's: 198.18.0.0, the
// start of the benchmarking range 198.18.0.0/15.
const firstAddr = 198<<24 | 18<<16

// firstLoopback is the address before the first endpoint's when
// Config.Loopback is set: 127.0.0.0.
const firstLoopback = 127 << 24

// GroupAddr is the destination address receivers see (Packet.Dst) on a
// datagram sent with Send: the LAN's multicast group, 239.255.0.1. A
// datagram sent with SendTo carries its receiver's address instead.
func GroupAddr() netip.Addr { return netip.AddrFrom4([4]byte{239, 255, 0, 1}) }

// Config configures a LAN. The zero value is ready to use.
type Config struct {
	// QueueLen is how many datagrams each endpoint's receive queue holds.
	// When it is full, further datagrams to the endpoint are dropped and
	// counted, as a full socket buffer drops them. Zero means 1024.
	QueueLen int

	// MaxDatagram is the largest datagram, in bytes, that Send and SendTo
	// accept; a larger one fails with an error wrapping
	// transport.ErrTooLarge. Zero means transport.MaxDatagram (1452). At
	// most MaxUDP (65507).
	MaxDatagram int

	// NoLoopback stops Send from delivering a copy of a datagram back to
	// its sender. False (the zero value) means the sender receives its own
	// multicasts, as a real host does with IP_MULTICAST_LOOP on, which is
	// the kernel's default.
	NoLoopback bool

	// Loopback gives endpoints addresses in 127.0.0.0/8 (127.0.0.1 for the
	// first) instead of 198.18.0.0/15, as if every member ran on this one
	// host. A Group accepts a health URI on a loopback address only from a
	// loopback source: set it when members' health servers listen on
	// 127.0.0.1, as examples and tests with real probes do.
	Loopback bool

	// Refusals makes SendTo to an address where no open endpoint is (one
	// that never joined, or whose endpoint closed) deliver a refusal to the
	// sender: a Packet with Refused set and Src the address, as the
	// multicast transport reports an ICMP port unreachable on Linux
	// (transport.RefusalReporter). False (the zero value) drops such a
	// datagram silently, as UDP does.
	Refusals bool

	// Seed seeds the random source that decides which datagrams loss
	// strikes. Zero is a seed like any other: the same seed and the same
	// sequence of sends give the same losses.
	Seed uint64

	// Logger receives a Debug message when an endpoint joins or leaves
	// and a Trace message for every dropped datagram. Nil means
	// hclog.NewNullLogger().
	Logger hclog.Logger
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		QueueLen:    1024,
		MaxDatagram: transport.MaxDatagram,
		Logger:      hclog.NewNullLogger(),
	}
}

// ErrInvalidConfig wraps every problem Config.Validate reports.
var ErrInvalidConfig = errors.New("mem: invalid config")

// Validate reports every invalid field of c at once, each wrapping
// ErrInvalidConfig. Zero values are valid: they stand for the defaults.
func (c Config) Validate() error {
	var errs []error
	if c.QueueLen < 0 {
		errs = append(errs, fmt.Errorf("%w: QueueLen %d is negative", ErrInvalidConfig, c.QueueLen))
	}
	if c.MaxDatagram < 0 || c.MaxDatagram > MaxUDP {
		errs = append(errs, fmt.Errorf("%w: MaxDatagram %d is outside 0..%d", ErrInvalidConfig, c.MaxDatagram, MaxUDP))
	}
	return errors.Join(errs...)
}

// withDefaults returns a copy of c with its zero fields filled in.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.QueueLen == 0 {
		c.QueueLen = d.QueueLen
	}
	if c.MaxDatagram == 0 {
		c.MaxDatagram = d.MaxDatagram
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}

// Stats counts what happened to datagrams. A datagram Send emits becomes
// one copy per endpoint on the LAN (the sender's own loopback copy
// included); one SendTo emits becomes one copy. Every copy ends up in
// exactly one of Delivered, Lost, Partitioned, Down and QueueFull, and a
// delivered copy later in Received or Truncated, unless its receiver closes
// first.
type Stats struct {
	// Sent counts the datagrams Send and SendTo accepted.
	Sent uint64
	// Delivered counts copies placed in a receive queue.
	Delivered uint64
	// Received counts copies Receive returned.
	Received uint64
	// Truncated counts copies Receive dropped because they were longer
	// than its buffer.
	Truncated uint64
	// Lost counts copies dropped by LAN.SetLoss or LAN.SetLinkLoss.
	Lost uint64
	// Partitioned counts copies dropped by LAN.Partition.
	Partitioned uint64
	// Down counts copies dropped because their sender or receiver was
	// down (Endpoint.SetDown).
	Down uint64
	// QueueFull counts copies dropped because the receive queue was full.
	QueueFull uint64
	// Unknown counts SendTo datagrams addressed to no endpoint of the LAN.
	Unknown uint64
	// Refused counts the refusals of such datagrams queued for their
	// sender (Config.Refusals).
	Refused uint64
}

// counters is the live, concurrently updated form of Stats.
type counters struct {
	sent, delivered, received, truncated        atomic.Uint64
	lost, partitioned, down, queueFull, unknown atomic.Uint64
	refused                                     atomic.Uint64
}

// outcome is what became of one copy of a datagram.
type outcome int

const (
	delivered outcome = iota
	droppedDown
	droppedPartition
	droppedLoss
	droppedQueueFull
)

func (o outcome) String() string {
	switch o {
	case delivered:
		return "delivered"
	case droppedDown:
		return "down"
	case droppedPartition:
		return "partition"
	case droppedLoss:
		return "loss"
	case droppedQueueFull:
		return "queue full"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

func (c *counters) count(o outcome) {
	switch o {
	case delivered:
		c.delivered.Add(1)
	case droppedDown:
		c.down.Add(1)
	case droppedPartition:
		c.partitioned.Add(1)
	case droppedLoss:
		c.lost.Add(1)
	case droppedQueueFull:
		c.queueFull.Add(1)
	}
}

func (c *counters) snapshot() Stats {
	return Stats{
		Sent:        c.sent.Load(),
		Delivered:   c.delivered.Load(),
		Received:    c.received.Load(),
		Truncated:   c.truncated.Load(),
		Lost:        c.lost.Load(),
		Partitioned: c.partitioned.Load(),
		Down:        c.down.Load(),
		QueueFull:   c.queueFull.Load(),
		Unknown:     c.unknown.Load(),
		Refused:     c.refused.Load(),
	}
}

// LAN is an in-memory broadcast domain. Create it with NewLAN.
type LAN struct {
	cfg   Config
	log   hclog.Logger
	stats counters

	mu       sync.Mutex
	rng      *rand.Rand
	joined   uint32                       // endpoints ever joined; numbers addresses
	members  []*Endpoint                  // open endpoints, in joining order
	byAddr   map[netip.AddrPort]*Endpoint // open endpoints by address
	loss     float64                      // probability of losing any copy
	linkLoss map[[2]*Endpoint]float64     // probability of losing a copy from [0] to [1]
	group    map[*Endpoint]int            // partition group; absent means 0
}

// NewLAN returns an empty LAN configured by cfg.
func NewLAN(cfg Config) (*LAN, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &LAN{
		cfg:      cfg,
		log:      cfg.Logger,
		rng:      rand.New(rand.NewPCG(cfg.Seed, 0x706972)),
		byAddr:   make(map[netip.AddrPort]*Endpoint),
		linkLoss: make(map[[2]*Endpoint]float64),
	}, nil
}

// Join adds a new endpoint to the LAN. Its address is 198.18.0.0 + n
// (127.0.0.0 + n with Config.Loopback), port Port, for the n-th endpoint to
// join; addresses are never reused.
func (l *LAN) Join() *Endpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.joined++
	first := uint32(firstAddr)
	if l.cfg.Loopback {
		first = firstLoopback
	}
	e := &Endpoint{
		lan:    l,
		addr:   netip.AddrPortFrom(addr4(first+l.joined), Port),
		ready:  make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
	l.members = append(l.members, e)
	l.byAddr[e.addr] = e
	l.log.Debug("endpoint joined", "addr", e.addr)
	return e
}

func addr4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// SetLoss makes every copy that crosses the LAN vanish with probability p,
// clamped to [0, 1]. Zero, the initial value, loses nothing.
func (l *LAN) SetLoss(p float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loss = clamp(p)
}

// SetLinkLoss makes copies from one endpoint to another vanish with
// probability p, clamped to [0, 1], on top of the LAN's loss. It is one-way:
// copies from to to from are not affected. Zero removes the link's loss.
func (l *LAN) SetLinkLoss(from, to *Endpoint, p float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := [2]*Endpoint{from, to}
	if p = clamp(p); p == 0 {
		delete(l.linkLoss, k)
		return
	}
	l.linkLoss[k] = p
}

// clamp returns p limited to [0, 1]; NaN becomes 0.
func clamp(p float64) float64 {
	switch {
	case !(p > 0):
		return 0
	case p > 1:
		return 1
	}
	return p
}

// Partition splits the LAN: an endpoint reaches only the endpoints of its
// own group. Endpoints named in no group, including those that join later,
// form one more group together. An endpoint named in several groups
// belongs to the last. Endpoints of other LANs are ignored. A new Partition
// replaces the previous one; Heal ends it.
//
// For example, Partition([]*Endpoint{a}) cuts a off from everyone else.
func (l *LAN) Partition(groups ...[]*Endpoint) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.group = make(map[*Endpoint]int)
	for i, g := range groups {
		for _, e := range g {
			if e != nil && e.lan == l {
				l.group[e] = i + 1
			}
		}
	}
}

// Heal ends a partition: every endpoint reaches every other again.
func (l *LAN) Heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.group = nil
}

// Stats returns the LAN's counters: the sum over every endpoint that ever
// joined it.
func (l *LAN) Stats() Stats {
	return l.stats.snapshot()
}

// Endpoint is one member of a LAN. It implements transport.Transport.
type Endpoint struct {
	lan   *LAN
	addr  netip.AddrPort
	stats counters

	// down is guarded by lan.mu.
	down bool

	mu       sync.Mutex
	queue    []datagram // queue[head:] waits to be received
	head     int
	isClosed bool
	ready    chan struct{} // holds a token when queue may be non-empty
	closed   chan struct{} // closed by Close
}

var (
	_ transport.Transport       = (*Endpoint)(nil)
	_ transport.UniqueUnicast   = (*Endpoint)(nil)
	_ transport.RefusalReporter = (*Endpoint)(nil)
)

// datagram is one queued copy. Its bytes are shared by every copy of one
// send and never written after the send copied them.
type datagram struct {
	b       []byte
	src     netip.AddrPort
	dst     netip.Addr
	refused bool // a refusal by src, not a datagram
}

// UnicastIsUnique reports true: an endpoint's address is its own, and is
// never reused.
func (e *Endpoint) UnicastIsUnique() bool { return true }

// ReportsRefusals reports whether the LAN's Config.Refusals is set.
func (e *Endpoint) ReportsRefusals() bool { return e.lan.cfg.Refusals }

// Addr returns the endpoint's address: what receivers see as Packet.Src
// and what SendTo reaches it by.
func (e *Endpoint) Addr() netip.AddrPort { return e.addr }

// String returns the endpoint's address.
func (e *Endpoint) String() string { return e.addr.String() }

// Stats returns the endpoint's counters. Sent and Unknown count datagrams
// the endpoint sent; every other field counts copies on their way to it.
func (e *Endpoint) Stats() Stats {
	return e.stats.snapshot()
}

// SetDown pulls the endpoint's cable (true) or plugs it back in (false).
// While it is down, nothing it sends reaches anyone, not even itself, and
// nothing reaches it; sends still succeed, as they do on a real host whose
// link has lost its carrier. Datagrams already queued stay there and can be
// received.
func (e *Endpoint) SetDown(down bool) {
	e.lan.mu.Lock()
	defer e.lan.mu.Unlock()
	e.down = down
}

// Send delivers a copy of b to every endpoint on the LAN, itself included
// unless the LAN's Config.NoLoopback is set. It does not keep b. It fails
// with an error wrapping transport.ErrTooLarge if b is longer than
// Config.MaxDatagram, and with one wrapping transport.ErrClosed once the
// endpoint is closed; it does not fail because of faults, which drop
// datagrams silently.
func (e *Endpoint) Send(b []byte) error {
	l := e.lan
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := e.checkSend("send", len(b)); err != nil {
		return err
	}
	d := datagram{b: bytes.Clone(b), src: e.addr, dst: GroupAddr()}
	for _, to := range l.members {
		if to == e && l.cfg.NoLoopback {
			continue
		}
		l.deliver(d, e, to)
	}
	return nil
}

// SendTo delivers a copy of b to the endpoint whose address is dst. A
// datagram to an address no open endpoint has is dropped silently, as UDP
// drops it, and counted in Stats.Unknown; with Config.Refusals, the
// sender then receives a refusal (a Packet with Refused set and Src dst),
// unless it is down. An IPv4-mapped IPv6 dst
// (::ffff:198.18.0.1) reaches the endpoint with the IPv4 address. It does
// not keep b, and fails as Send does.
func (e *Endpoint) SendTo(b []byte, dst netip.AddrPort) error {
	l := e.lan
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := e.checkSend("send to "+dst.String(), len(b)); err != nil {
		return err
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	to := l.byAddr[dst]
	if to == nil {
		e.stats.unknown.Add(1)
		l.stats.unknown.Add(1)
		if l.log.IsTrace() {
			l.log.Trace("datagram dropped", "from", e.addr, "to", dst, "reason", "unknown destination")
		}
		if l.cfg.Refusals && !e.down && dst.Addr().IsValid() && e.push(datagram{src: dst, refused: true}) {
			e.stats.refused.Add(1)
			l.stats.refused.Add(1)
		}
		return nil
	}
	l.deliver(datagram{b: bytes.Clone(b), src: e.addr, dst: to.addr.Addr()}, e, to)
	return nil
}

// checkSend reports whether e may send n bytes, and counts the send if so.
// The caller holds lan.mu.
func (e *Endpoint) checkSend(op string, n int) error {
	l := e.lan
	if l.byAddr[e.addr] != e {
		return fmt.Errorf("mem: %s %s: %w", e.addr, op, transport.ErrClosed)
	}
	if n > l.cfg.MaxDatagram {
		return fmt.Errorf("mem: %s %s: %d bytes, at most %d: %w",
			e.addr, op, n, l.cfg.MaxDatagram, transport.ErrTooLarge)
	}
	e.stats.sent.Add(1)
	l.stats.sent.Add(1)
	return nil
}

// deliver decides the fate of one copy of d from one endpoint to another,
// queues it if it survives, and counts the outcome. The caller holds lan.mu.
func (l *LAN) deliver(d datagram, from, to *Endpoint) {
	o := delivered
	switch {
	case from.down || to.down:
		o = droppedDown
	case from != to && l.group[from] != l.group[to]:
		o = droppedPartition
	case from != to && l.lose(from, to):
		o = droppedLoss
	case !to.push(d):
		o = droppedQueueFull
	}
	to.stats.count(o)
	l.stats.count(o)
	if o != delivered && l.log.IsTrace() {
		l.log.Trace("datagram dropped", "from", from.addr, "to", to.addr, "reason", o.String())
	}
}

// lose draws whether a copy from one endpoint to another is lost. The
// caller holds lan.mu.
func (l *LAN) lose(from, to *Endpoint) bool {
	keep := (1 - l.loss) * (1 - l.linkLoss[[2]*Endpoint{from, to}])
	switch {
	case keep >= 1:
		return false
	case keep <= 0:
		return true
	}
	return l.rng.Float64() >= keep
}

// push queues d unless the queue is full, and wakes a waiting Receive.
func (e *Endpoint) push(d datagram) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.queue)-e.head >= e.lan.cfg.QueueLen {
		return false
	}
	if e.head > 0 && len(e.queue) == cap(e.queue) {
		// Reuse the room that received datagrams left at the front.
		n := copy(e.queue, e.queue[e.head:])
		clear(e.queue[n:])
		e.queue, e.head = e.queue[:n], 0
	}
	e.queue = append(e.queue, d)
	e.signal()
	return true
}

// signal leaves a token in ready, unless one is there already.
func (e *Endpoint) signal() {
	select {
	case e.ready <- struct{}{}:
	default:
	}
}

// Receive blocks until a datagram arrives, copies it into buf and describes
// it: Src is the sender's address, IfIndex is 1 and Dst is GroupAddr for
// a datagram sent with Send, the endpoint's address for one sent with
// SendTo. A refusal (Config.Refusals) is returned as a Packet with only
// Refused and Src, the refused address, set. A datagram longer than
// buf is dropped and Receive returns an error wrapping
// transport.ErrTruncated, with a Packet whose Src names the sender and whose
// N is 0. Once the endpoint is closed, Receive returns an error wrapping
// transport.ErrClosed, even if datagrams were queued.
func (e *Endpoint) Receive(buf []byte) (transport.Packet, error) {
	for {
		d, ok, err := e.pop()
		if err != nil {
			return transport.Packet{}, err
		}
		if !ok {
			select {
			case <-e.ready:
			case <-e.closed:
			}
			continue
		}
		if d.refused {
			return transport.Packet{Src: d.src, Refused: true}, nil
		}
		if len(d.b) > len(buf) {
			e.stats.truncated.Add(1)
			e.lan.stats.truncated.Add(1)
			return transport.Packet{Src: d.src, IfIndex: 1, Dst: d.dst},
				fmt.Errorf("mem: %s receive: %d-byte datagram from %s, %d-byte buffer: %w",
					e.addr, len(d.b), d.src, len(buf), transport.ErrTruncated)
		}
		e.stats.received.Add(1)
		e.lan.stats.received.Add(1)
		return transport.Packet{N: copy(buf, d.b), Src: d.src, IfIndex: 1, Dst: d.dst}, nil
	}
}

// pop takes the oldest queued datagram, if there is one.
func (e *Endpoint) pop() (datagram, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.isClosed {
		return datagram{}, false, fmt.Errorf("mem: %s receive: %w", e.addr, transport.ErrClosed)
	}
	if e.head == len(e.queue) {
		return datagram{}, false, nil
	}
	d := e.queue[e.head]
	e.queue[e.head] = datagram{}
	e.head++
	if e.head == len(e.queue) {
		e.queue, e.head = e.queue[:0], 0
	} else {
		// Pass the token on, for another goroutine receiving at once.
		e.signal()
	}
	return d, true, nil
}

// Close removes the endpoint from the LAN, discards its queue and unblocks
// a pending Receive. It is idempotent and always returns nil.
func (e *Endpoint) Close() error {
	l := e.lan
	l.mu.Lock()
	if l.byAddr[e.addr] == e {
		delete(l.byAddr, e.addr)
		l.members = slices.DeleteFunc(l.members, func(x *Endpoint) bool { return x == e })
		delete(l.group, e)
		for k := range l.linkLoss {
			if k[0] == e || k[1] == e {
				delete(l.linkLoss, k)
			}
		}
		l.log.Debug("endpoint left", "addr", e.addr)
	}
	l.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.isClosed {
		e.isClosed = true
		e.queue, e.head = nil, 0
		close(e.closed)
	}
	return nil
}

var _ transport.DefaultCodec = (*Endpoint)(nil)

// DefaultCodec returns pipe.Codec{}, the format of the original pir, so
// that a Group on the in-memory LAN speaks what it speaks on a real one.
func (e *Endpoint) DefaultCodec() codec.Codec { return pipe.Codec{} }
