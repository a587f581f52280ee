package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/auth"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/transport"
)

// An Adviser tells the user, on stderr and whatever -log says, about
// datagrams and probes that fail in a way that means someone is
// misconfigured: a member signing with a key this one does not hold, a
// member without the key, one in another group on the same port, a health
// URI where nothing listens. The Group counts these drops (Stats) and logs
// them at Trace; without this, a wrong -key-file gives an empty group and
// not a word.
//
// Each kind of problem is told once per source address (or health URI),
// for at most maxAdvised sources per kind, then once that there are more:
// a flood of forged datagrams from many addresses prints a few lines, and
// the adviser's memory stays bounded.
//
// It sees the datagrams by wrapping the Group's codec (which decodes them)
// and transport (which says where each came from: the Group decodes each
// datagram on the goroutine that received it, right after Receive), and
// the probes by wrapping the prober.
type Adviser struct {
	w       io.Writer
	group   string // this member's group
	keyFile string // -key-file, "" when none
	// Siblings are the groups this process also serves (pir-agent): their
	// datagrams, heard on the shared port, are no misconfiguration.
	Siblings []string

	mu      sync.Mutex
	src     netip.AddrPort  // the source of the datagram being decoded
	told    map[string]int  // sources told, per kind
	toldSrc map[string]bool // kind + " " + source
	healthy map[string]bool // health URIs that answered a probe once
}

// maxAdvised is how many sources are told of per kind of problem.
const maxAdvised = 4

// maxHealthy bounds the health URIs remembered as having answered.
const maxHealthy = 4096

func NewAdviser(w io.Writer, group, keyFile string) *Adviser {
	return &Adviser{w: w, group: group, keyFile: keyFile,
		told: map[string]int{}, toldSrc: map[string]bool{}, healthy: map[string]bool{}}
}

// tell prints the advice of the given kind about source once. what is
// the full advice, already escaped.
func (a *Adviser) tell(kind, source, what string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := kind + " " + source
	if a.toldSrc[key] {
		return
	}
	n := a.told[kind]
	switch {
	case n < maxAdvised:
		a.toldSrc[key] = true
		fmt.Fprintf(a.w, "pir: %s\n", what)
	case n == maxAdvised:
		fmt.Fprintf(a.w, "pir: more sources with %s, not shown\n", kind)
	default:
		return
	}
	a.told[kind] = n + 1
}

func (a *Adviser) setSource(src netip.AddrPort) {
	a.mu.Lock()
	a.src = src
	a.mu.Unlock()
}

func (a *Adviser) source() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.src.IsValid() {
		return "an unknown source"
	}
	return a.src.Addr().String()
}

// decoded looks at the outcome of decoding b.
func (a *Adviser) decoded(b []byte, m *codec.Message, err error) {
	keyFile := a.keyFile
	switch {
	case err == nil && m.Group != a.group && !slices.Contains(a.Siblings, m.Group):
		src := a.source()
		a.tell("foreign_group", src, fmt.Sprintf("datagrams from %s are for group %q, not %q (foreign_group): ignored; if you meant that group, check -group", src, m.Group, a.group))
	case err == nil:
	case errors.Is(err, auth.ErrUnknownKey):
		src := a.source()
		a.tell("unknown_key", src, fmt.Sprintf("datagrams from %s are signed with a key not in %s (unknown_key): check -key-file on both members", src, keyFile))
	case errors.Is(err, auth.ErrBadTag):
		src := a.source()
		a.tell("bad_tag", src, fmt.Sprintf("datagrams from %s carry a bad authentication tag (bad_tag): forged or damaged; if it is a member, check its -key-file", src))
	case errors.Is(err, auth.ErrUnauthenticated):
		src := a.source()
		a.tell("unauthenticated", src, fmt.Sprintf("datagrams from %s are not authenticated (unauthenticated): that member needs -key-file with the keys in %s", src, keyFile))
	case errors.Is(err, auth.ErrStale):
		src := a.source()
		a.tell("stale", src, fmt.Sprintf("datagrams from %s are timestamped too far from this host's clock (stale): check both clocks", src))
	case keyFile == "" && strings.HasPrefix(string(b[:min(len(b), len(auth.Prefix))]), auth.Prefix):
		src := a.source()
		a.tell("keyed", src, fmt.Sprintf("datagrams from %s are authenticated with a group key and this member has none (malformed): add -key-file", src))
	}
}

// probed looks at the outcome of a probe of target.
func (a *Adviser) probed(target *url.URL, err error) {
	uri := target.String()
	if err == nil {
		a.mu.Lock()
		if len(a.healthy) >= maxHealthy {
			clear(a.healthy)
		}
		a.healthy[uri] = true
		a.mu.Unlock()
		return
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return
	}
	a.mu.Lock()
	answered := a.healthy[uri]
	a.mu.Unlock()
	if answered {
		return // it worked before: that member has gone, which the group handles
	}
	a.tell("refused", uri, fmt.Sprintf("health probes to %s are refused: nothing listens there; the member that announces it has its health server elsewhere, stopped or firewalled", Printable(uri)))
}

// Codec wraps c so that the adviser sees every decode.
func (a *Adviser) Codec(c codec.Codec) codec.Codec { return advisedCodec{c, a} }

type advisedCodec struct {
	codec.Codec
	a *Adviser
}

func (c advisedCodec) Decode(b []byte, m *codec.Message) error {
	err := c.Codec.Decode(b, m)
	c.a.decoded(b, m, err)
	return err
}

// Transport wraps t so that the adviser knows where each datagram came
// from. It keeps t's optional interfaces: LinkSender and
// healthcheck.SchemeProvider (the mDNS Transport's probers for the
// services it finds) by the wrapper's type, the ones that answer a
// question or ask a favour (UniqueUnicast, RefusalReporter,
// NeighbourConfirmer, DefaultCodec) by passing it on.
func (a *Adviser) Transport(t transport.Transport) transport.Transport {
	at := advisedTransport{t, a}
	ls, link := t.(transport.LinkSender)
	sp, schemes := t.(healthcheck.SchemeProvider)
	switch {
	case link && schemes:
		return advisedLinkSchemeTransport{advisedLinkTransport{at, ls}, sp}
	case link:
		return advisedLinkTransport{at, ls}
	case schemes:
		return advisedSchemeTransport{at, sp}
	}
	return at
}

type advisedTransport struct {
	transport.Transport
	a *Adviser
}

func (t advisedTransport) Receive(buf []byte) (transport.Packet, error) {
	pkt, err := t.Transport.Receive(buf)
	if err == nil && !pkt.Refused { // a refusal is no datagram to decode
		t.a.setSource(pkt.Src)
	}
	return pkt, err
}

// UnicastIsUnique, ReportsRefusals and DefaultCodec pass on what t's
// transport says, and what a transport that does not implement them means:
// without them a Group on the wrapped transport would never ping
// (docs/design/frugal.md), nor hear a refusal.
func (t advisedTransport) UnicastIsUnique() bool {
	u, ok := t.Transport.(transport.UniqueUnicast)
	return ok && u.UnicastIsUnique()
}

func (t advisedTransport) ReportsRefusals() bool {
	r, ok := t.Transport.(transport.RefusalReporter)
	return ok && r.ReportsRefusals()
}

// ConfirmNeighbour passes on to t's transport, where it has one
// (transport.NeighbourConfirmer): without it every ping's neighbour entry
// would be re-probed.
func (t advisedTransport) ConfirmNeighbour(dst netip.AddrPort) error {
	if c, ok := t.Transport.(transport.NeighbourConfirmer); ok {
		return c.ConfirmNeighbour(dst)
	}
	return errors.ErrUnsupported
}

func (t advisedTransport) DefaultCodec() codec.Codec {
	if d, ok := t.Transport.(transport.DefaultCodec); ok {
		return d.DefaultCodec()
	}
	return nil
}

type advisedLinkTransport struct {
	advisedTransport
	ls transport.LinkSender
}

func (t advisedLinkTransport) Links() []transport.Link { return t.ls.Links() }

func (t advisedLinkTransport) SendVia(b []byte, l transport.Link) error { return t.ls.SendVia(b, l) }

type advisedSchemeTransport struct {
	advisedTransport
	sp healthcheck.SchemeProvider
}

func (t advisedSchemeTransport) Probers() map[string]healthcheck.Prober { return t.sp.Probers() }

type advisedLinkSchemeTransport struct {
	advisedLinkTransport
	sp healthcheck.SchemeProvider
}

func (t advisedLinkSchemeTransport) Probers() map[string]healthcheck.Prober { return t.sp.Probers() }

// Prober wraps p so that the adviser sees every probe. It keeps p's
// optional SchemeSupporter.
func (a *Adviser) Prober(p healthcheck.Prober) healthcheck.Prober { return advisedProber{p, a} }

type advisedProber struct {
	p healthcheck.Prober
	a *Adviser
}

func (p advisedProber) Probe(ctx context.Context, target *url.URL) error {
	err := p.p.Probe(ctx, target)
	p.a.probed(target, err)
	return err
}

func (p advisedProber) Supports(scheme string) bool {
	if s, ok := p.p.(healthcheck.SchemeSupporter); ok {
		return s.Supports(scheme)
	}
	return true
}
