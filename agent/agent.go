package agent

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"

	"github.com/pirlan/pir/discovery"
)

// Defaults and bounds.
const (
	// DefaultDomain is the DNS domain when Config.Domain is empty.
	DefaultDomain = "pir."
	// DefaultMaxEvents is Config.MaxEvents when it is zero.
	DefaultMaxEvents = 256
	// maxMaxEvents bounds Config.MaxEvents.
	maxMaxEvents = 1 << 16
	// sseBuffer is how many events may wait for one SSE client; when its
	// buffer is full the client is slow and is disconnected.
	sseBuffer = 256
	// maxStreams bounds the SSE streams open at once; beyond it a new
	// stream is refused with 503.
	maxStreams = 256
	// maxWaiting bounds the blocking queries waiting at once; beyond it a
	// blocking query is refused with 503.
	maxWaiting = 1024
	// closeWait bounds how long Close waits for the requests it ends.
	closeWait = 5 * time.Second
)

// ErrInvalidConfig is returned by New for a Config it cannot use.
var ErrInvalidConfig = errors.New("agent: invalid config")

// ErrClosed is returned by Watch after Close.
var ErrClosed = errors.New("agent: closed")

// Config configures an Agent. Zero values take the defaults noted.
type Config struct {
	// Domain is the DNS domain the agent answers for, default "pir.".
	// It is case-insensitive and always taken as fully qualified.
	Domain string
	// TTL of every DNS record, in seconds; default 0 (do not cache).
	TTL uint32
	// MaxEvents is how many recent events are kept per group, for the
	// page's timeline and for SSE clients resuming with Last-Event-ID;
	// default 256, at most 65536.
	MaxEvents int
	// Public says the HTTP listener is not on loopback: then a browser
	// request from another origin is refused (403).
	Public bool
	// Logger receives the agent's logs; nil discards them.
	Logger hclog.Logger
}

func (c *Config) setDefaults() error {
	var errs []error
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	c.Domain = dns.CanonicalName(c.Domain)
	if _, ok := dns.IsDomainName(c.Domain); !ok {
		errs = append(errs, fmt.Errorf("%w: domain %q is not a domain name", ErrInvalidConfig, c.Domain))
	}
	if c.MaxEvents == 0 {
		c.MaxEvents = DefaultMaxEvents
	}
	if c.MaxEvents < 0 || c.MaxEvents > maxMaxEvents {
		errs = append(errs, fmt.Errorf("%w: MaxEvents %d not in 1..%d", ErrInvalidConfig, c.MaxEvents, maxMaxEvents))
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return errors.Join(errs...)
}

// Agent serves the membership of the groups it watches over DNS and HTTP.
// Its methods are safe for concurrent use.
type Agent struct {
	cfg Config
	log hclog.Logger

	mu      sync.RWMutex
	groups  map[string]*view // by lower-case name
	seq     uint64           // the agent-wide event sequence; a group's index is the seq of its latest event
	streams map[*stream]struct{}
	closed  bool
	done    chan struct{} // closed by Close
	active  sync.WaitGroup

	stats counters

	waiting    atomic.Int64     // blocking queries waiting now (tests wait for it)
	appliedFor func(seq uint64) // tests only: called at the end of each apply, under mu
}

// counters are the agent's Stats, as atomics.
type counters struct {
	dnsAnswered, dnsNXDomain, dnsTruncated, dnsRefused atomic.Uint64
	dnsFormErr, dnsNotImp, dnsIgnored, dnsSkippedNames atomic.Uint64
	httpRequests, httpBad, httpForbidden               atomic.Uint64
	sseDropped, sseRefused, events                     atomic.Uint64
	waitRefused                                        atomic.Uint64
}

// Stats are the agent's counters.
type Stats struct {
	Groups int // groups watched
	// Events is the number of membership events the agent received.
	Events uint64

	// DNSAnswered counts queries answered NOERROR (NXDOMAIN included in
	// DNSNXDomain); DNSTruncated those of them sent with TC over UDP.
	DNSAnswered, DNSNXDomain, DNSTruncated uint64
	// DNSRefused counts questions outside the domain (REFUSED).
	DNSRefused uint64
	// DNSFormErr counts malformed queries answered FORMERR (no question
	// or more than one), DNSNotImp queries answered NOTIMP (an opcode
	// other than QUERY, a class other than IN), DNSIgnored messages that
	// were responses, not queries (no reply).
	DNSFormErr, DNSNotImp, DNSIgnored uint64
	// DNSSkippedNames counts members left out of a DNS answer because
	// their ID is not a valid DNS label.
	DNSSkippedNames uint64

	// HTTPRequests counts HTTP requests; HTTPBad those refused as bad
	// (400, 404, 405); HTTPForbidden those refused 403 (Host or Origin).
	HTTPRequests, HTTPBad, HTTPForbidden uint64
	// SSEStreams is the number of event streams open now; SSEDropped
	// counts streams disconnected because the client read too slowly;
	// SSERefused streams refused because too many were open.
	SSEStreams             int
	SSEDropped, SSERefused uint64
	// Waiting is the number of blocking queries waiting now;
	// WaitRefused counts those refused because too many were waiting.
	Waiting     int
	WaitRefused uint64
}

// New returns an Agent watching no group yet.
func New(cfg Config) (*Agent, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Agent{
		cfg:     cfg,
		log:     cfg.Logger,
		groups:  make(map[string]*view),
		streams: make(map[*stream]struct{}),
		done:    make(chan struct{}),
	}, nil
}

// Watch serves group g under its name (g's Config.Name). The agent adds a
// listener to g and removes it on Close. Watching a name twice (names
// compare case-insensitively) is an error.
func (a *Agent) Watch(g *discovery.Group) error {
	if g == nil {
		return fmt.Errorf("agent: watch: nil group")
	}
	v, err := a.newView(g.Name())
	if err != nil {
		return err
	}
	remove := g.AddListener(func(e discovery.Event) bool { return a.apply(v, e) })
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		remove()
		return ErrClosed
	}
	v.remove = remove
	a.active.Add(1)
	go func() {
		defer a.active.Done()
		select {
		case <-g.Done():
			a.stopped(v)
		case <-a.done:
		}
	}()
	return nil
}

// stopped empties v when its group has stopped (closed or left): the agent
// no longer knows its members. Each leaves with reason "stopped".
func (a *Agent) stopped(v *view) {
	a.mu.RLock()
	ms := v.sorted()
	a.mu.RUnlock()
	now := time.Now()
	for _, m := range ms {
		if !a.apply(v, discovery.Event{Type: discovery.Left, Member: m, At: now}) {
			return
		}
	}
	a.log.Debug("watched group stopped", "group", v.name)
}

// newView adds an empty view named name. Tests feed it with apply.
func (a *Agent) newView(name string) (*view, error) {
	if name == "" {
		return nil, fmt.Errorf("agent: watch: group has no name")
	}
	key := strings.ToLower(name)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, ErrClosed
	}
	if _, ok := a.groups[key]; ok {
		return nil, fmt.Errorf("agent: watch: group %q is already watched", name)
	}
	v := newView(name, a.cfg.MaxEvents)
	a.groups[key] = v
	return v, nil
}

// group returns the view named name (case-insensitive), or nil.
func (a *Agent) group(name string) *view {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.groups[strings.ToLower(name)]
}

// apply records e in v and tells whoever waits. It is v's listener; it
// returns false once the agent is closed.
func (a *Agent) apply(v *view, e discovery.Event) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.seq++
	a.stats.events.Add(1)
	rec := v.apply(a.seq, e)
	for s := range a.streams {
		if s.group == nil || s.group == v {
			if !s.offer(rec) {
				delete(a.streams, s)
				a.stats.sseDropped.Add(1)
				a.log.Debug("slow event stream dropped", "remote", s.remote)
			}
		}
	}
	if a.appliedFor != nil {
		a.appliedFor(a.seq)
	}
	return true
}

// enter registers a request that may block (a blocking query, a stream),
// so that Close can end it and wait for it. It reports false after Close.
func (a *Agent) enter() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.active.Add(1)
	return true
}

// Stats returns a snapshot of the agent's counters.
func (a *Agent) Stats() Stats {
	a.mu.RLock()
	groups, streams := len(a.groups), len(a.streams)
	a.mu.RUnlock()
	c := &a.stats
	return Stats{
		Groups:          groups,
		Events:          c.events.Load(),
		DNSAnswered:     c.dnsAnswered.Load(),
		DNSNXDomain:     c.dnsNXDomain.Load(),
		DNSTruncated:    c.dnsTruncated.Load(),
		DNSRefused:      c.dnsRefused.Load(),
		DNSFormErr:      c.dnsFormErr.Load(),
		DNSNotImp:       c.dnsNotImp.Load(),
		DNSIgnored:      c.dnsIgnored.Load(),
		DNSSkippedNames: c.dnsSkippedNames.Load(),
		HTTPRequests:    c.httpRequests.Load(),
		HTTPBad:         c.httpBad.Load(),
		HTTPForbidden:   c.httpForbidden.Load(),
		SSEStreams:      streams,
		SSEDropped:      c.sseDropped.Load(),
		SSERefused:      c.sseRefused.Load(),
		Waiting:         int(a.waiting.Load()),
		WaitRefused:     c.waitRefused.Load(),
	}
}

// Close ends blocking queries and event streams, removes the agent's
// listeners from its groups, and waits (up to 5 s) for the requests it
// ended to return. The DNS handler keeps answering from the last view.
// Close is idempotent.
func (a *Agent) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	close(a.done)
	var removes []func()
	for _, v := range a.groups {
		if v.remove != nil {
			removes = append(removes, v.remove)
		}
	}
	for s := range a.streams {
		s.end()
		delete(a.streams, s)
	}
	a.mu.Unlock()
	for _, r := range removes {
		r()
	}
	finished := make(chan struct{})
	go func() {
		a.active.Wait()
		close(finished)
	}()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-finished:
		return nil
	case <-t.C:
		return fmt.Errorf("agent: close: requests still running after %v", closeWait)
	}
}
