package mdns

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/internal/netlab"
)

// service returns the records a responder publishes for a service
// instance inst of type svc (e.g. "_http._tcp.local.") on host, at port.
func service(svc, inst, host string, port uint16, ttl uint32) []dns.RR {
	return []dns.RR{
		&dns.PTR{Hdr: hdr(svc, dns.TypePTR, ttl, false), Ptr: inst},
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV, ttl, true), Port: port, Target: host},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT, ttl, true), Txt: []string{"path=/"}},
		&dns.A{Hdr: hdr(host, dns.TypeA, ttl, true), A: netlab.LoopbackV4.AsSlice()},
	}
}

// The Conn's probers pass only services it found over mDNS: the mdns://
// health URI of a found service passes, and tcpconnect:// of its address
// is probed (a TCP connect); either scheme for any other address fails
// with ErrNotFound without a probe.
func TestMDNSProbersOnlyFound(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t)
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(netlab.LoopbackV4, 0).String())
	require.NoError(t, err)
	defer ln.Close()
	svcPort := uint16(ln.Addr().(*net.TCPAddr).Port)

	w := open(t, Config{Port: port, Network: "udp4", Service: "_http._tcp"})
	r := newResponder(t, port)
	r.send(service("_http._tcp.local.", `Web\ Site._http._tcp.local.`, "web.local.", svcPort, 120)...)
	g := w.waitMsg("the web site", func(g got) bool { return g.msg.Kind == codec.Announce && strings.HasPrefix(g.msg.ID, "Web-Site-") })
	health, err := url.Parse(g.msg.Health)
	require.NoError(t, err)
	require.Equal(t, SchemeAdvertised, health.Scheme)

	probers := w.Probers()
	ctx := context.Background()
	assert.NoError(t, probers[SchemeAdvertised].Probe(ctx, health), "a found service is advertised")
	conn := &url.URL{Scheme: SchemeTCPConnect, Host: health.Host}
	assert.NoError(t, probers[SchemeTCPConnect].Probe(ctx, conn), "a found service is probed")
	for _, u := range []string{
		"tcpconnect://" + netip.AddrPortFrom(netlab.LoopbackV4, svcPort+1).String(), // another port
		"tcpconnect://198.18.1.1:" + health.Port(),                                  // another address
	} {
		err := probers[SchemeTCPConnect].Probe(ctx, &url.URL{Scheme: SchemeTCPConnect, Host: strings.TrimPrefix(u, "tcpconnect://")})
		assert.ErrorIs(t, err, ErrNotFound, u)
	}
	other := &url.URL{Scheme: SchemeAdvertised, Host: "198.18.1.1:" + health.Port()}
	assert.ErrorIs(t, probers[SchemeAdvertised].Probe(ctx, other), ErrNotFound, "another address")
	assert.ErrorIs(t, probers[SchemeTCPConnect].Probe(ctx, &url.URL{Scheme: SchemeTCPConnect, Host: "web.local:80"}), healthcheck.ErrInvalidTarget)

	require.NoError(t, w.Close())
	assert.ErrorIs(t, probers[SchemeTCPConnect].Probe(ctx, conn), net.ErrClosed)
	assert.ErrorIs(t, probers[SchemeAdvertised].Probe(ctx, health), net.ErrClosed)
}

// forgePTRs multicasts PTR records of name, pointing to made-up instances,
// with the largest TTL there is, in responses of up to 1400 bytes from r,
// until w's cache is full (it evicted or refused a record). Each response
// waits until w has read a datagram since the one before, so that the
// flood goes no faster than w reads. It returns the records and the
// datagrams sent.
func forgePTRs(t *testing.T, r *responder, w *peer, name string) (ptrs, datagrams int) {
	t.Helper()
	full := func() bool { s := w.Stats(); return s.Evicted+s.CacheFull > 0 }
	for !full() {
		require.Less(t, datagrams, 2000, "the cache never filled: %+v", w.Stats())
		m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}, Compress: true}
		for m.Len() < 1400 {
			m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr(name, dns.TypePTR, math.MaxUint32, false),
				Ptr: fmt.Sprintf("forged-%05d._pir._udp.local.", ptrs)})
			ptrs++
		}
		b, err := m.Pack()
		require.NoError(t, err)
		before := w.Stats().Received
		_, err = r.pc.WriteToUDPAddrPort(b, netip.AddrPortFrom(GroupV4, r.port))
		require.NoError(t, err)
		datagrams++
		require.Eventually(t, func() bool { return w.Stats().Received > before || full() }, timeout, time.Millisecond)
	}
	return ptrs, datagrams
}

// TestMDNSCachePinning plays issue 12's attack 6: forged PTR records of
// the browsed name with TTL 2^32-1 fill the cache (4,096 records, about 80
// datagrams); a real member that starts afterwards is still seen,
// because a full cache evicts the records of instances never delivered.
// On the code before, the forged records stayed (their TTL unclamped),
// every record of the new member was refused (CacheFull) and it was never
// seen.
func TestMDNSCachePinning(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t)
	w := open(t, Config{Port: port, Network: "udp4"})
	r := newResponder(t, port)
	ptrs, datagrams := forgePTRs(t, r, w, w.Browse())

	a := open(t, Config{Port: port, Network: "udp4"})
	a.send(member("a", 1001))
	w.waitMsg("the real member", announceOf("a"))
	s := w.Stats()
	t.Logf("figures: cache full after %d forged PTRs (TTL 2^32-1) in %d datagrams; real member seen; evicted %d, refused %d", ptrs, datagrams, s.Evicted, s.CacheFull)
	assert.Positive(t, s.Evicted)
}

// A received TTL is cut to RFC 6762 §10's normal values: 75 minutes for
// a PTR or TXT record, 120 s for SRV and address records.
func TestMDNSClampTTL(t *testing.T) {
	c := bareConn(t, Config{})
	now := time.Now()
	inst := "x._pir._udp.local."
	rrs := []dns.RR{
		&dns.PTR{Hdr: hdr(c.browse, dns.TypePTR, math.MaxUint32, false), Ptr: inst},
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV, math.MaxUint32, true), Port: 1, Target: "x.local."},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT, 7200, true), Txt: []string{"a=1"}},
		&dns.A{Hdr: hdr("x.local.", dns.TypeA, 60, true), A: netip.MustParseAddr("198.18.0.9").AsSlice()},
	}
	b, err := (&dns.Msg{MsgHdr: dnsResponseHdr, Answer: rrs}).Pack()
	require.NoError(t, err)
	m, err := parseMessage(b)
	require.NoError(t, err)
	c.e.response(inbound{msg: m, src: netip.MustParseAddrPort("198.18.0.9:5353"), ifIndex: 1}, now)
	want := map[uint16]time.Duration{dns.TypePTR: 75 * time.Minute, dns.TypeSRV: 120 * time.Second,
		dns.TypeTXT: 75 * time.Minute, dns.TypeA: 60 * time.Second}
	for k, set := range c.e.cache.sets {
		require.Len(t, set, 1)
		assert.Equal(t, want[k.typ], set[0].ttl, dns.TypeToString[k.typ])
		assert.Equal(t, now.Add(want[k.typ]), set[0].expires, dns.TypeToString[k.typ])
	}
	assert.Len(t, c.e.cache.sets, 4)
}

// TestMDNSForgedGoodbye plays the other half of attack 6: a goodbye (TTL
// 0) of a live member's PTR and SRV records, sent by someone else. The
// Conn asks the member's records again before it believes it; the member
// answers, and no goodbye reaches Receive. The member's own goodbye, when
// it closes, still does. On the code before, the forged goodbye was
// delivered at once.
func TestMDNSForgedGoodbye(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t)
	w := open(t, Config{Port: port, Network: "udp4"})
	a, inst := publishedPeer(t, port)
	w.waitMsg("the real member", announceOf("a"))

	// The forger learns a's SRV record as anyone can: it asks.
	q := newQuerier(t, port)
	q.query(&dns.Msg{Question: []dns.Question{{Name: inst, Qtype: dns.TypeSRV, Qclass: dns.ClassINET | classFlush}}}, port)
	var srv *dns.SRV
	for srv == nil {
		m, _ := q.next()
		for _, rr := range m.Answer {
			if s, ok := rr.(*dns.SRV); ok {
				srv = s
			}
		}
	}
	r := &responder{t: t, pc: q.pc, port: port}
	bye := *srv
	bye.Hdr.Ttl = 0
	r.send(&dns.PTR{Hdr: hdr(w.Browse(), dns.TypePTR, 0, false), Ptr: inst}, &bye)

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for refuted := false; !refuted; {
		select {
		case g := <-w.msgs:
			require.False(t, goodbyeOf("a")(g), "the forged goodbye was delivered")
		case ev := <-w.events:
			refuted = ev[0] == "goodbye-refuted" && strings.EqualFold(ev[1], inst)
		case <-timer.C:
			t.Fatalf("the goodbye was not refuted within %v: %+v", timeout, w.Stats())
		}
	}
	assert.Equal(t, uint64(1), w.Stats().Refuted)
	assert.Zero(t, w.Stats().Goodbyes)

	// The member's own goodbye is believed: it does not answer.
	require.NoError(t, a.Close())
	w.waitMsg("a's goodbye", goodbyeOf("a"))
	assert.Equal(t, uint64(1), w.Stats().Goodbyes)
}

// The other side of the goodbye check: a responder that leaves and then
// sends answers it had queued before its goodbye (python-zeroconf 0.47
// holds multicast answers up to 1.5 s to aggregate them) must not keep its
// instance, and must not bring it back. Only a direct answer to the check's
// one-shot query refutes a goodbye or brings an instance back: a service
// registered again gives one. On the code before, the stale records that
// followed the goodbye refuted it, and the instance stayed until its
// records expired (e2e TestMDNSWatchForeignService saw it with zeroconf).
func TestMDNSStaleAnswersAfterGoodbye(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t)
	w := open(t, Config{Port: port, Network: "udp4", Service: "_http._tcp"})
	r := newResponder(t, port)
	r.legacyAnswers() // for what it advertises: not the records it sends
	inst := `Web\ Site._http._tcp.local.`
	records := func(ttl uint32) []dns.RR { return service("_http._tcp.local.", inst, "web.local.", 8080, ttl) }
	isSite := func(kind codec.Kind) func(got) bool {
		return func(g got) bool { return g.msg.Kind == kind && strings.HasPrefix(g.msg.ID, "Web-Site-") }
	}
	r.send(records(120)...)
	w.waitMsg("the web site", isSite(codec.Announce))

	// The goodbye, and at once the answers queued before it.
	r.send(records(0)...)
	r.send(records(120)...)
	w.waitMsg("the goodbye, though records followed it", isSite(codec.Goodbye))
	assert.Zero(t, w.Stats().Refuted)
	// Handed to Receive: the announcement, the same again made from the
	// records that came while the goodbye was checked (the member was
	// still there then), and the goodbye. The counter is raised just after
	// the hand-over.
	const synthesized = 3
	require.Eventually(t, func() bool { return w.Stats().Synthesized == synthesized }, timeout, time.Millisecond)

	// More stale answers, after the goodbye was delivered: checked, and
	// ignored since nobody answers the check.
	r.send(records(120)...)
	assert.True(t, strings.EqualFold(inst, w.waitEvent("return-ignored")))
	assert.Equal(t, uint64(1), w.Stats().Stale)
	assert.Equal(t, uint64(synthesized), w.Stats().Synthesized, "the instance was not brought back")

	// The service registered again: it announces, and answers the check.
	require.NoError(t, r.advertise(inst, records(120)...))
	assert.True(t, strings.EqualFold(inst, w.waitEvent("returned")))
	w.waitMsg("the web site, back", isSite(codec.Announce))
}
