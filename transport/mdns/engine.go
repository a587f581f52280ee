package mdns

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/transport"
)

// cmdKind says what a command asks of the engine.
type cmdKind uint8

const (
	cmdSend     cmdKind = iota + 1 // publish, refresh or withdraw msg
	cmdSendTo                      // the same, and answer dst by unicast
	cmdClose                       // send goodbyes for what is published
	cmdInstance                    // report the instance name
	cmdFound                       // is target a found service's health URI?
)

// command is a request from a caller's goroutine to the engine.
type command struct {
	kind   cmdKind
	msg    codec.Message
	via    *transport.Link
	dst    netip.AddrPort
	name   chan<- string
	target foundKey
	reply  chan error
}

// engine is the state the engine goroutine owns: what the Conn publishes,
// the responses it will send, the cache and the instances it browses.
type engine struct {
	c   *Conn
	ttl uint32 // seconds, of every record published

	pub     *publication
	sent    map[sentKey]time.Time // when a record set was last multicast on a link
	pending []*pendingResponse
	held    map[netip.AddrPort]*heldQuery // truncated queries waiting for known answers

	cache    cache
	insts    map[string]*instance // by lower-case instance name
	queryAt  time.Time            // the next browse query
	queryGap time.Duration
	asks     map[rrKey]ask        // questions to send soon
	asksAt   time.Time            // the earliest of asks; zero when none
	checks   map[string]*instance // instances being checked (a goodbye, a return), by key
	beatAt   time.Time            // the next heartbeat; zero when disabled

	testEvent func(event, name string) // Config.testEvent
}

// sentKey identifies a record set multicast on one link and family.
type sentKey struct {
	rrKey
	ifIndex int
	v6      bool
}

// The timing rules of RFC 6762.
const (
	probeWait      = 250 * time.Millisecond // §8.1: between probes
	probes         = 3                      // §8.1
	announcements  = 2                      // §8.3: at least two
	announceGap    = time.Second            // §8.3
	lostTiebreak   = time.Second            // §8.2: the loser waits
	conflictPause  = 5 * time.Second        // §8.1: after 15 conflicts in 10 s
	multicastGap   = time.Second            // §6: per record and link
	defenseGap     = 250 * time.Millisecond // §6: when defending against a probe
	maxQueryGap    = time.Hour              // §5.2
	knownAnswerTC  = 450 * time.Millisecond // §7.2: 400-500 ms
	legacyTTL      = 10                     // §6.7: seconds, at most
	resolveGap     = time.Second            // between resolution queries of one name
	maxResolveAsks = 4
)

func (e *engine) init(c *Conn, now time.Time) {
	e.c = c
	e.ttl = uint32(c.cfg.TTL / time.Second)
	e.sent = make(map[sentKey]time.Time)
	e.held = make(map[netip.AddrPort]*heldQuery)
	e.cache.init(maxCache)
	e.insts = make(map[string]*instance)
	e.asks = make(map[rrKey]ask)
	e.checks = make(map[string]*instance)
	e.queryAt = now.Add(jitter(20*time.Millisecond, 120*time.Millisecond))
	e.queryGap = time.Second
	if c.cfg.Heartbeat > 0 {
		e.beatAt = now.Add(c.cfg.Heartbeat)
	}
	e.testEvent = c.cfg.testEvent
}

// jitter returns a random duration in [lo, hi).
func jitter(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rand.Int64N(int64(hi-lo)))
}

func (e *engine) event(ev, name string) {
	if e.testEvent != nil {
		e.testEvent(ev, name)
	}
}

// run is the engine goroutine: it handles received messages, commands and
// timed tasks, one at a time.
func (c *Conn) run() {
	defer c.wg.Done()
	e := &c.e
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		e.due(now)
		if at, ok := e.next(); ok {
			timer.Reset(time.Until(at))
		} else {
			timer.Stop()
		}
		select {
		case <-c.done:
			return
		case in := <-c.in:
			e.handle(in)
		case cmd := <-c.cmds:
			cmd.reply <- e.command(cmd, time.Now())
		case <-c.rescanned:
			e.linksChanged(time.Now())
		case <-timer.C:
		}
	}
}

// due runs every task whose time has come.
func (e *engine) due(now time.Time) {
	if p := e.pub; p != nil && !p.next.After(now) {
		e.pubDue(p, now)
	}
	e.pendingDue(now)
	e.heldDue(now)
	e.byeDue(now)
	e.cacheDue(now)
	e.browseDue(now)
	if !e.beatAt.IsZero() && !e.beatAt.After(now) {
		e.heartbeat(now)
		e.beatAt = now.Add(e.c.cfg.Heartbeat)
	}
}

// next returns the time of the earliest task.
func (e *engine) next() (time.Time, bool) {
	var at time.Time
	add := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	if e.pub != nil {
		add(e.pub.next)
	}
	for _, p := range e.pending {
		add(p.at)
	}
	for _, h := range e.held {
		add(h.at)
	}
	add(e.cache.next())
	add(e.queryAt)
	add(e.asksAt)
	for _, inst := range e.checks {
		add(inst.checkAt)
	}
	add(e.beatAt)
	return at, !at.IsZero()
}

func (e *engine) command(cmd command, now time.Time) error {
	switch cmd.kind {
	case cmdSend:
		return e.send(cmd.msg, cmd.via, now)
	case cmdSendTo:
		if err := e.send(cmd.msg, nil, now); err != nil {
			return err
		}
		return e.answerTo(cmd.dst, now)
	case cmdClose:
		e.withdraw(now)
	case cmdInstance:
		name := ""
		if e.pub != nil {
			name = e.pub.instFQDN(e.c.svc)
		}
		cmd.name <- name
	case cmdFound:
		if !e.found(cmd.target, now) {
			return ErrNotFound
		}
	}
	return nil
}

// send acts on a pir message of the Conn's group.
func (e *engine) send(m codec.Message, via *transport.Link, now time.Time) error {
	switch {
	case m.Kind == codec.Goodbye:
		e.withdraw(now)
		return nil
	case m.Kind == codec.Query && m.Health == "" && m.Comms == "":
		e.queryNow(now) // a watcher's "who is there?"
		return nil
	}
	if err := e.publish(m, via, now); err != nil {
		return err
	}
	if m.Kind == codec.Query {
		e.queryNow(now)
	}
	return nil
}

// handle acts on one received message.
func (e *engine) handle(in inbound) {
	now := time.Now()
	if l := e.c.link(in.ifIndex); l != nil && !l.onLink(in.src.Addr()) {
		e.c.st.offLink.Add(1)
		e.c.log.Trace("dropped a message from off the link", "from", in.src, "interface", l.ifi.Name)
		return
	}
	if in.msg.Query {
		e.c.st.queries.Add(1)
		e.tiebreak(in, now)
		e.query(in, now)
		return
	}
	if in.src.Port() != e.c.cfg.Port {
		// RFC 6762 §11: a response from another port is not mDNS.
		e.c.st.ignored.Add(1)
		return
	}
	e.response(in, now)
}

// linksChanged re-announces on every link and asks again who is there,
// after interfaces or addresses changed.
func (e *engine) linksChanged(now time.Time) {
	if p := e.pub; p != nil && p.state != probing {
		p.state, p.step, p.next = announcing, 0, now
	}
	e.queryNow(now)
}

// lower is strings.ToLower, for names.
func lower(s string) string { return strings.ToLower(s) }

// matches reports whether question q asks for record r.
func matches(q question, r *record) bool {
	return (q.Type == r.Type || q.Type == typeANY) && strings.EqualFold(q.Name, r.Name)
}
