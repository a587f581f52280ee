package mdns

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/ipv4"

	"github.com/pirlan/pir/internal/mcast"
	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport"
)

// querier is a test socket that speaks DNS to a Conn: bound to lo's IPv4
// address on the given port (beside the Conn's wildcard socket on the same
// port), it receives only unicast; bound to port 0 it is a one-shot
// (legacy) querier.
type querier struct {
	t  *testing.T
	pc *net.UDPConn
}

func newQuerier(t *testing.T, port uint16) *querier {
	t.Helper()
	lc := net.ListenConfig{Control: mcast.SharedPort}
	pc, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(netlab.LoopbackV4, port).String())
	require.NoError(t, err)
	t.Cleanup(func() { pc.Close() })
	return &querier{t: t, pc: pc.(*net.UDPConn)}
}

// query sends m to the mDNS group on port.
func (q *querier) query(m *dns.Msg, port uint16) {
	q.t.Helper()
	b, err := m.Pack()
	require.NoError(q.t, err)
	_, err = q.pc.WriteToUDPAddrPort(b, netip.AddrPortFrom(GroupV4, port))
	require.NoError(q.t, err)
}

// next waits for a message and returns it with its source.
func (q *querier) next() (*dns.Msg, netip.AddrPort) {
	q.t.Helper()
	require.NoError(q.t, q.pc.SetReadDeadline(time.Now().Add(timeout)))
	buf := make([]byte, 9000)
	n, src, err := q.pc.ReadFromUDPAddrPort(buf)
	require.NoError(q.t, err, "waiting for an answer")
	var m dns.Msg
	require.NoError(q.t, m.Unpack(buf[:n]))
	return &m, src
}

func ptrQuestion(name string, qu bool) dns.Question {
	q := dns.Question{Name: name, Qtype: dns.TypePTR, Qclass: dns.ClassINET}
	if qu {
		q.Qclass |= classFlush
	}
	return q
}

// publishedPeer starts a Conn on port that publishes member "a" and waits
// until it has announced itself.
func publishedPeer(t *testing.T, port uint16) (*peer, string) {
	t.Helper()
	a := open(t, Config{Port: port, Network: "udp4"})
	a.send(member("a", 1001))
	return a, a.waitEvent("published")
}

// A question with the unicast-response bit, for a record multicast
// recently, gets a unicast answer from the mDNS port.
func TestMDNSQUAnsweredByUnicast(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t)
	a, inst := publishedPeer(t, port)
	q := newQuerier(t, port)
	q.query(&dns.Msg{Question: []dns.Question{ptrQuestion(a.Browse(), true)}}, port)
	m, src := q.next()
	assert.Equal(t, port, src.Port(), "answered from the mDNS port")
	assert.True(t, m.Response && m.Authoritative)
	require.Len(t, m.Answer, 1)
	ptr, ok := m.Answer[0].(*dns.PTR)
	require.True(t, ok, "%v", m.Answer[0])
	assert.Equal(t, inst, ptr.Ptr)
	var types []uint16
	for _, rr := range m.Extra {
		types = append(types, rr.Header().Rrtype)
	}
	assert.Subset(t, types, []uint16{dns.TypeSRV, dns.TypeTXT, dns.TypeA}, "additional records (RFC 6763 §12)")
	assert.Positive(t, a.Stats().Answered)
}

// A known answer with at least half its TTL left suppresses the answer;
// one with less does not (RFC 6762 §7.1). Unicast answers go out at once
// and in order, so the answer to a later question shows that the earlier
// one got none.
func TestMDNSKnownAnswerSuppression(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t)
	a, inst := publishedPeer(t, port)
	q := newQuerier(t, port)
	known := func(ttl uint32) *dns.Msg {
		return &dns.Msg{
			Question: []dns.Question{ptrQuestion(a.Browse(), true)},
			Answer:   []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: a.Browse(), Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: ttl}, Ptr: inst}},
		}
	}
	srvQuestion := &dns.Msg{Question: []dns.Question{{Name: inst, Qtype: dns.TypeSRV, Qclass: dns.ClassINET | classFlush}}}

	q.query(known(uint32(DefaultTTL/time.Second)/2), port)
	q.query(srvQuestion, port)
	m, _ := q.next()
	require.NotEmpty(t, m.Answer)
	assert.Equal(t, dns.TypeSRV, m.Answer[0].Header().Rrtype, "the PTR the querier knows was answered: %v", m)
	assert.Positive(t, a.Stats().Suppressed)

	q.query(known(uint32(DefaultTTL/time.Second)/2-1), port)
	m, _ = q.next()
	require.NotEmpty(t, m.Answer)
	assert.Equal(t, dns.TypePTR, m.Answer[0].Header().Rrtype, "a known answer with less than half its TTL must not suppress")
}

// Known answers that did not fit the query follow it with the TC bit;
// the responder waits for them (RFC 6762 §7.2).
func TestMDNSKnownAnswersAcrossPackets(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t)
	a, inst := publishedPeer(t, port)
	q := newQuerier(t, port)
	first := &dns.Msg{Question: []dns.Question{ptrQuestion(a.Browse(), true)}}
	first.Truncated = true
	q.query(first, port)
	q.query(&dns.Msg{Answer: []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: a.Browse(), Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 120}, Ptr: inst}}}, port)
	q.query(&dns.Msg{Question: []dns.Question{{Name: inst, Qtype: dns.TypeSRV, Qclass: dns.ClassINET | classFlush}}}, port)
	m, _ := q.next()
	require.NotEmpty(t, m.Answer)
	assert.Equal(t, dns.TypeSRV, m.Answer[0].Header().Rrtype, "the PTR listed in the follow-up packet was answered: %v", m)
}

// A query from a port other than 5353 is a one-shot query: the answer goes
// to its source by unicast, echoing its ID and question, with TTLs of at
// most 10 s and no cache-flush bit (RFC 6762 §6.7).
func TestMDNSLegacyQuery(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t)
	_, inst := publishedPeer(t, port)
	q := newQuerier(t, 0)
	qm := &dns.Msg{Question: []dns.Question{{Name: inst, Qtype: dns.TypeSRV, Qclass: dns.ClassINET}}}
	qm.Id = 0x1234
	q.query(qm, port)
	m, src := q.next()
	assert.Equal(t, port, src.Port())
	assert.Equal(t, uint16(0x1234), m.Id)
	require.Len(t, m.Question, 1)
	assert.Equal(t, inst, m.Question[0].Name)
	require.NotEmpty(t, m.Answer)
	for _, rr := range append(m.Answer, m.Extra...) {
		assert.LessOrEqual(t, rr.Header().Ttl, uint32(10), "%v", rr)
		assert.Zero(t, rr.Header().Class&classFlush, "%v", rr)
	}
}

// The responder answers service type enumeration (RFC 6763 §9).
func TestMDNSServiceEnumeration(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t)
	publishedPeer(t, port)
	q := newQuerier(t, 0)
	q.query(&dns.Msg{Question: []dns.Question{ptrQuestion(enumName, false)}}, port)
	m, _ := q.next()
	require.Len(t, m.Answer, 1)
	ptr := m.Answer[0].(*dns.PTR)
	assert.Equal(t, "_pir._udp.local.", ptr.Ptr)
	assert.Empty(t, m.Extra)
}

// responder is a fake mDNS responder of other software: it multicasts
// responses from the mDNS port on lo.
type responder struct {
	t    *testing.T
	pc   *net.UDPConn
	port uint16

	mu   sync.Mutex
	live map[string][]dns.RR // with legacyAnswers: the records to answer, by instance
}

func newResponder(t *testing.T, port uint16) *responder {
	q := newQuerier(t, port)
	return &responder{t: t, pc: q.pc, port: port}
}

func (r *responder) send(rrs ...dns.RR) {
	r.t.Helper()
	m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}, Answer: rrs}
	b, err := m.Pack()
	require.NoError(r.t, err)
	_, err = r.pc.WriteToUDPAddrPort(b, netip.AddrPortFrom(GroupV4, r.port))
	require.NoError(r.t, err)
}

// legacyAnswers makes r answer the one-shot queries (RFC 6762 §6.7) a Conn
// sends to check a goodbye or a return, as a real responder does: at once,
// by unicast from the mDNS port, echoing the query's ID and questions, with
// the records of the instances r advertises (set by advertise) that the
// query asks for. The cleanup stops it and waits.
func (r *responder) legacyAnswers() {
	r.t.Helper()
	lc := net.ListenConfig{Control: mcast.SharedPort}
	pc, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), r.port).String())
	require.NoError(r.t, err)
	lo, err := net.InterfaceByName(netlab.Loopback)
	require.NoError(r.t, err)
	require.NoError(r.t, ipv4.NewPacketConn(pc).JoinGroup(lo, &net.UDPAddr{IP: GroupV4.AsSlice()}))
	r.mu.Lock()
	r.live = make(map[string][]dns.RR)
	r.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 9000)
		for {
			n, src, err := pc.(*net.UDPConn).ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var q dns.Msg
			if q.Unpack(buf[:n]) != nil || q.Response || src.Port() == r.port {
				continue // not a one-shot query
			}
			resp := &dns.Msg{MsgHdr: dns.MsgHdr{Id: q.Id, Response: true, Authoritative: true}, Question: q.Question}
			r.mu.Lock()
			for inst, rrs := range r.live {
				for _, qu := range q.Question {
					if strings.EqualFold(qu.Name, inst) || (qu.Qtype == dns.TypePTR && strings.EqualFold(qu.Name, rrs[0].Header().Name)) {
						for _, rr := range rrs {
							rr = dns.Copy(rr)
							rr.Header().Ttl, rr.Header().Class = legacyTTL, dns.ClassINET
							resp.Answer = append(resp.Answer, rr)
						}
						break
					}
				}
			}
			r.mu.Unlock()
			if len(resp.Answer) == 0 {
				continue
			}
			if b, err := resp.Pack(); err == nil {
				_, _ = r.pc.WriteToUDPAddrPort(b, src)
			}
		}
	}()
	r.t.Cleanup(func() {
		pc.Close()
		<-done
	})
}

// advertise multicasts rrs, the records of instance inst (its PTR first),
// and, with legacyAnswers, answers one-shot queries for them while their
// TTL is not 0. Unlike send, it may be called from any goroutine.
func (r *responder) advertise(inst string, rrs ...dns.RR) error {
	r.mu.Lock()
	if r.live != nil {
		if rrs[0].Header().Ttl > 0 {
			r.live[inst] = rrs
		} else {
			delete(r.live, inst)
		}
	}
	r.mu.Unlock()
	b, err := (&dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}, Answer: rrs}).Pack()
	if err != nil {
		return err
	}
	_, err = r.pc.WriteToUDPAddrPort(b, netip.AddrPortFrom(GroupV4, r.port))
	return err
}

func hdr(name string, typ uint16, ttl uint32, flush bool) dns.RR_Header {
	h := dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: ttl}
	if flush {
		h.Class |= classFlush
	}
	return h
}

// foreign returns the records of a service "My Printer" of type
// _ipp._tcp at 198.18.255.1:631, as other software announces it.
func foreign(ttl uint32, port uint16) []dns.RR {
	inst := `My\ Printer._ipp._tcp.local.`
	return []dns.RR{
		&dns.PTR{Hdr: hdr("_ipp._tcp.local.", dns.TypePTR, ttl, false), Ptr: inst},
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV, ttl, true), Port: port, Target: "printer.local."},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT, ttl, true), Txt: []string{"txtvers=1", "rp=ipp/print", "note=2nd floor", "Color"}},
		&dns.A{Hdr: hdr("printer.local.", dns.TypeA, ttl, true), A: netlab.LoopbackV4.AsSlice()},
	}
}

// A service of other software becomes a member with a stable ID, its TXT
// pairs as metadata, a comms URI from its SRV record and a tcpconnect
// health URI; its goodbye (TTL 0) is a goodbye at once.
func TestMDNSForeignServiceAndGoodbye(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t)
	c := open(t, Config{Port: port, Network: "udp4", Service: "_ipp._tcp", Heartbeat: -1})
	r := newResponder(t, port)
	r.send(foreign(120, 631)...)

	id := "My-Printer-" + shortHash(`my\ printer._ipp._tcp.local.`)
	g := c.waitMsg("the printer", announceOf(id))
	assert.Equal(t, "mdns://198.18.255.1:631", g.msg.Health)
	assert.Equal(t, "tcp://198.18.255.1:631", g.msg.Comms)
	assert.Equal(t, map[string]string{"txtvers": "1", "rp": "ipp/print", "note": "2nd floor", "Color": ""}, g.msg.Meta)
	assert.Equal(t, netip.AddrPortFrom(netlab.LoopbackV4, port), g.pkt.Src)

	// A new port, with the cache-flush bit: an update.
	r.send(foreign(120, 8631)[1])
	g = c.waitMsg("the printer's update", announceOf(id))
	assert.Equal(t, "tcp://198.18.255.1:8631", g.msg.Comms)

	r.send(foreign(0, 8631)...)
	c.waitMsg("the printer's goodbye", goodbyeOf(id))
}

// A response from a port other than the mDNS port is not mDNS (RFC 6762
// §11): it is ignored. A pir member of another group is ignored too.
func TestMDNSIgnoredResponses(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t)
	c := open(t, Config{Port: port, Network: "udp4", Service: "_ipp._tcp", Heartbeat: -1})
	other := &responder{t: t, pc: newQuerier(t, 0).pc, port: port}
	other.send(foreign(120, 631)...)

	r := newResponder(t, port)
	inst := `pir\ of\ another\ group._ipp._tcp.local.`
	r.send(
		&dns.PTR{Hdr: hdr("_ipp._tcp.local.", dns.TypePTR, 120, false), Ptr: inst},
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV, 120, true), Port: 1, Target: "printer.local."},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT, 120, true), Txt: []string{"id=x", "g=other", "health=tcp://198.18.255.1:1", "comms=tcp://198.18.255.1:1"}},
		&dns.A{Hdr: hdr("printer.local.", dns.TypeA, 120, true), A: netlab.LoopbackV4.AsSlice()},
	)
	// Then a marker that is delivered: had either been, it would come first.
	r.send(&dns.PTR{Hdr: hdr("_ipp._tcp.local.", dns.TypePTR, 120, false), Ptr: `marker._ipp._tcp.local.`},
		&dns.SRV{Hdr: hdr(`marker._ipp._tcp.local.`, dns.TypeSRV, 120, true), Port: 2, Target: "printer.local."},
		&dns.TXT{Hdr: hdr(`marker._ipp._tcp.local.`, dns.TypeTXT, 120, true), Txt: []string{"id=marker", "g=test", "health=tcp://198.18.255.1:2", "comms=tcp://198.18.255.1:2"}})
	g := c.waitMsg("anything", func(got) bool { return true })
	assert.Equal(t, "marker", g.msg.ID)
	assert.Positive(t, c.Stats().Ignored)
}

// Messages beyond 9000 bytes and bytes that are not DNS are dropped and
// counted; a Send beyond MaxRaw fails with ErrTooLarge; announcements
// larger than MaxMessage are split over several messages, each within it,
// which the receiver puts together.
func TestMDNSSizeLimits(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t)
	a := open(t, Config{Port: port, Network: "udp4", MaxMessage: 512})
	b := open(t, Config{Port: port, Network: "udp4"})
	sniff := newSniffer(t, port)

	m := member("a", 1001)
	m.Meta = map[string]string{}
	for i := range 3 {
		m.Meta["k"+strconv.Itoa(i)] = strings.Repeat("v", 110)
	}
	// Unsplit, the announcement would not fit.
	bc := bareConn(t, Config{})
	require.NoError(t, bc.e.publish(m, nil, time.Now()))
	whole, _ := packMessages(responseHdr, nil, bc.e.stamped(bc.e.records(bc.e.pub, bc.links[1]), -1, true), nil, MaxMessage, false)
	require.Len(t, whole, 1)
	require.Greater(t, len(whole[0]), 512)

	a.send(m)
	g := b.waitMsg("a's announcement", announceOf("a"))
	assert.Equal(t, m.Meta, g.msg.Meta, "put together from several messages")
	for range 2 {
		n := sniff.next(t)
		assert.LessOrEqual(t, n, 512)
	}

	err := a.Send(make([]byte, MaxRaw+1))
	require.ErrorIs(t, err, transport.ErrTooLarge)

	// Garbage and an oversize message, then a raw marker from the same
	// socket: once the marker arrives, both were counted.
	junk := newQuerier(t, 0)
	for _, p := range [][]byte{make([]byte, 9100), []byte("not dns at all")} {
		_, err := junk.pc.WriteToUDPAddrPort(p, netip.AddrPortFrom(GroupV4, port))
		require.NoError(t, err)
	}
	_, err = junk.pc.WriteToUDPAddrPort(appendRaw(nil, []byte("marker")), netip.AddrPortFrom(GroupV4, port))
	require.NoError(t, err)
	b.waitMsg("the marker", func(g got) bool { return string(g.raw) == "marker" })
	s := b.Stats()
	assert.Equal(t, uint64(1), s.Oversize)
	assert.Equal(t, uint64(1), s.Malformed)
}

// sniffer reports the size of every mDNS response on lo that carries a
// record of the instance "a".
type sniffer struct {
	sizes chan int
}

func newSniffer(t *testing.T, port uint16) *sniffer {
	t.Helper()
	s, err := listen(false, port, true, true)
	require.NoError(t, err)
	lo, err := net.InterfaceByName(netlab.Loopback)
	require.NoError(t, err)
	require.NoError(t, s.join(lo, GroupV4))
	sn := &sniffer{sizes: make(chan int, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			n, _, _, _, err := s.readFrom(buf)
			if err != nil {
				return
			}
			m, err := parseMessage(buf[:n])
			if err != nil || m.Query {
				continue
			}
			for _, r := range append(m.Answers, m.Additional...) {
				if strings.HasPrefix(r.Name, "a.") {
					select {
					case sn.sizes <- n:
					default:
					}
					break
				}
			}
		}
	}()
	t.Cleanup(func() {
		s.close()
		<-done
	})
	return sn
}

// next waits for the size of the next response.
func (s *sniffer) next(t *testing.T) int {
	t.Helper()
	select {
	case n := <-s.sizes:
		return n
	case <-time.After(timeout):
		t.Fatalf("no response of a's within %v", timeout)
		return 0
	}
}
