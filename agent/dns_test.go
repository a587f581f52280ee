package agent

import (
	"net"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/score"
)

// query asks server over net ("udp" or "tcp") one question.
func query(t *testing.T, network, server, name string, qtype uint16, edns uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	return exchange(t, network, server, m)
}

func exchange(t *testing.T, network, server string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, UDPSize: 65535}
	r, _, err := c.Exchange(m, server)
	require.NoError(t, err)
	require.Equal(t, m.Id, r.Id)
	return r
}

// rawUDP sends one query to server and returns the datagram that answers.
func rawUDP(t *testing.T, server, name string, qtype uint16) []byte {
	t.Helper()
	c, err := net.Dial("udp", server)
	require.NoError(t, err)
	defer c.Close()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	b, err := m.Pack()
	require.NoError(t, err)
	_, err = c.Write(b)
	require.NoError(t, err)
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	require.NoError(t, err)
	return buf[:n]
}

func names(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch rr := rr.(type) {
		case *dns.SRV:
			out = append(out, rr.Target)
		case *dns.A:
			out = append(out, rr.Hdr.Name+" "+rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.Hdr.Name+" "+rr.AAAA.String())
		case *dns.TXT:
			out = append(out, rr.Txt...)
		}
	}
	sort.Strings(out)
	return out
}

func soaOnly(t *testing.T, r *dns.Msg) {
	t.Helper()
	assert.Empty(t, r.Answer)
	require.Len(t, r.Ns, 1)
	soa, ok := r.Ns[0].(*dns.SOA)
	require.True(t, ok, "SOA in authority")
	assert.Equal(t, "pir.", soa.Hdr.Name)
}

// webGroup feeds group web: two healthy IPv4 members (one with metadata),
// one healthy IPv6 member, one suspect member, one whose ID is no label.
func webGroup(t testing.TB, a *Agent) {
	feed(t, a, "web",
		fake("M1", "198.18.0.1", 8080, score.Healthy, map[string]string{"zone": "b", "role": `a"b\c`, "x": "<script>\x01"}),
		fake("m2", "198.18.0.2", 8081, score.Healthy, nil),
		fake("m6", "fd42::6", 8086, score.Healthy, nil),
		fake("sick", "198.18.0.9", 8089, score.Suspect, nil),
		fake("not a label!", "198.18.0.10", 8090, score.Healthy, nil),
	)
	feed(t, a, "empty", fake("s1", "198.18.0.11", 1, score.Suspect, nil))
}

func TestDNSRecords(t *testing.T) {
	a := newAgent(t, Config{TTL: 7})
	webGroup(t, a)
	udp, tcp := dnsServers(t, a)
	for _, tc := range []struct{ network, server string }{{"udp", udp}, {"tcp", tcp}} {
		t.Run(tc.network, func(t *testing.T) {
			q := func(name string, qtype uint16) *dns.Msg { return query(t, tc.network, tc.server, name, qtype, 0) }

			r := q("web.pir.", dns.TypeSRV)
			require.Equal(t, dns.RcodeSuccess, r.Rcode)
			assert.True(t, r.Authoritative)
			assert.Equal(t, []string{"m1.web.pir.", "m2.web.pir.", "m6.web.pir."}, names(r.Answer), "one SRV per healthy member")
			assert.Equal(t, []string{"m1.web.pir. 198.18.0.1", "m2.web.pir. 198.18.0.2", "m6.web.pir. fd42::6"}, names(r.Extra), "A/AAAA glue")
			for _, rr := range r.Answer {
				srv := rr.(*dns.SRV)
				assert.Equal(t, uint32(7), srv.Hdr.Ttl)
				want := map[string]uint16{"m1.web.pir.": 8080, "m2.web.pir.": 8081, "m6.web.pir.": 8086}[srv.Target]
				assert.Equal(t, want, srv.Port, "the comms URI's port")
			}

			r = q("web.pir.", dns.TypeA)
			assert.Equal(t, []string{"web.pir. 198.18.0.1", "web.pir. 198.18.0.2"}, names(r.Answer))
			r = q("web.pir.", dns.TypeAAAA)
			assert.Equal(t, []string{"web.pir. fd42::6"}, names(r.Answer))

			r = q("WeB.PIR.", dns.TypeA)
			assert.Equal(t, dns.RcodeSuccess, r.Rcode, "names are case-insensitive")
			assert.Len(t, r.Answer, 2)
			r = q("m1.Web.pir.", dns.TypeA)
			assert.Equal(t, []string{"m1.web.pir. 198.18.0.1"}, names(r.Answer), "an ID in any case")

			r = q("m1.web.pir.", dns.TypeTXT)
			assert.Equal(t, []string{`role=a\"b\\c`, `x=<script>\001`, "zone=b"}, names(r.Answer), "metadata, sorted, escaped")

			// An ID that is no DNS label is not served.
			r = q("sick.web.pir.", dns.TypeA)
			assert.Equal(t, []string{"sick.web.pir. 198.18.0.9"}, names(r.Answer), "a suspect member still has its own name")

			r = q("nope.pir.", dns.TypeSRV)
			assert.Equal(t, dns.RcodeNameError, r.Rcode, "unknown group")
			soaOnly(t, r)
			r = q("nope.web.pir.", dns.TypeA)
			assert.Equal(t, dns.RcodeNameError, r.Rcode, "unknown member")
			soaOnly(t, r)
			r = q("a.m1.web.pir.", dns.TypeA)
			assert.Equal(t, dns.RcodeNameError, r.Rcode, "too deep")

			r = q("empty.pir.", dns.TypeSRV)
			assert.Equal(t, dns.RcodeSuccess, r.Rcode, "known group without a healthy member")
			soaOnly(t, r)
			r = q("m2.web.pir.", dns.TypeAAAA)
			assert.Equal(t, dns.RcodeSuccess, r.Rcode, "known member without that type")
			soaOnly(t, r)
			r = q("m2.web.pir.", dns.TypeTXT)
			soaOnly(t, r)

			r = q("web.example.", dns.TypeA)
			assert.Equal(t, dns.RcodeRefused, r.Rcode, "outside the domain")
			assert.Empty(t, r.Answer)
		})
	}
	s := a.Stats()
	assert.Equal(t, uint64(2), s.DNSRefused)
	assert.Equal(t, uint64(6), s.DNSNXDomain)
	assert.NotZero(t, s.DNSSkippedNames, "the ID that is no label is counted")
}

func TestDNSDomainConfigurable(t *testing.T) {
	a := newAgent(t, Config{Domain: "LAN.Example"})
	webGroup(t, a)
	udp, _ := dnsServers(t, a)
	r := query(t, "udp", udp, "web.lan.example.", dns.TypeA, 0)
	assert.Len(t, r.Answer, 2)
	r = query(t, "udp", udp, "web.pir.", dns.TypeA, 0)
	assert.Equal(t, dns.RcodeRefused, r.Rcode)
}

// A 100-member group does not fit 512 bytes: over UDP the answer is
// truncated with TC, over TCP complete, and with EDNS0 the larger size is
// used.
func TestDNSLargeGroupTruncated(t *testing.T) {
	a := newAgent(t, Config{})
	feed(t, a, "big", bigGroup(100)...)
	udp, tcp := dnsServers(t, a)

	for _, qtype := range []uint16{dns.TypeSRV, dns.TypeA} {
		b := rawUDP(t, udp, "big.pir.", qtype)
		assert.LessOrEqual(t, len(b), 512, "the datagram")
		r := new(dns.Msg)
		require.NoError(t, r.Unpack(b))
		assert.True(t, r.Truncated, "TC over UDP")
		assert.Less(t, len(r.Answer), 100)
		assert.NotEmpty(t, r.Answer, "as many as fit")

		r = query(t, "tcp", tcp, "big.pir.", qtype, 0)
		assert.False(t, r.Truncated)
		assert.Len(t, r.Answer, 100, "complete over TCP")
		if qtype == dns.TypeSRV {
			assert.Len(t, r.Extra, 100, "every glue record")
		}
	}
	r := query(t, "udp", udp, "big.pir.", dns.TypeA, 4096)
	assert.False(t, r.Truncated, "100 A records fit EDNS0's 4096 bytes")
	assert.Len(t, r.Answer, 100)
	assert.NotNil(t, r.IsEdns0(), "the OPT record answered")
	r = query(t, "udp", udp, "big.pir.", dns.TypeSRV, 1232)
	assert.True(t, r.Truncated)
	assert.Greater(t, len(r.Answer), 10, "more than 512 bytes' worth")
	assert.NotNil(t, r.IsEdns0(), "the OPT record answered with SRV glue")
	assert.Equal(t, uint64(3), a.Stats().DNSTruncated)
}

func TestDNSShuffles(t *testing.T) {
	a := newAgent(t, Config{})
	feed(t, a, "big", bigGroup(20)...)
	udp, _ := dnsServers(t, a)
	first := names(query(t, "udp", udp, "big.pir.", dns.TypeA, 0).Answer)
	orders := map[string]bool{}
	for range 20 {
		r := query(t, "udp", udp, "big.pir.", dns.TypeA, 0)
		assert.Equal(t, first, names(r.Answer), "the same addresses")
		var order []string
		for _, rr := range r.Answer {
			order = append(order, rr.(*dns.A).A.String())
		}
		orders[order[0]] = true
	}
	assert.Greater(t, len(orders), 1, "20 answers all led by the same address")
}

// Malformed queries over a real socket get FORMERR or NOTIMP and are
// counted; a response sent to the agent gets no reply.
func TestDNSMalformed(t *testing.T) {
	a := newAgent(t, Config{})
	webGroup(t, a)
	udp, _ := dnsServers(t, a)

	m := new(dns.Msg)
	m.SetQuestion("web.pir.", dns.TypeA)
	m.Question = append(m.Question, m.Question[0])
	assert.Equal(t, dns.RcodeFormatError, exchange(t, "udp", udp, m).Rcode, "two questions")

	m = new(dns.Msg)
	m.Id = dns.Id()
	assert.Equal(t, dns.RcodeFormatError, exchange(t, "udp", udp, m).Rcode, "no question")

	m = new(dns.Msg)
	m.SetQuestion("web.pir.", dns.TypeA)
	m.Question[0].Qclass = dns.ClassCHAOS
	assert.Equal(t, dns.RcodeNotImplemented, exchange(t, "udp", udp, m).Rcode, "class CH")

	m = new(dns.Msg)
	m.SetNotify("web.pir.")
	assert.Equal(t, dns.RcodeNotImplemented, exchange(t, "udp", udp, m).Rcode, "opcode NOTIFY")

	m = new(dns.Msg)
	m.SetQuestion("web.pir.", dns.TypeA)
	m.Opcode = dns.OpcodeUpdate
	assert.Equal(t, dns.RcodeNotImplemented, exchange(t, "udp", udp, m).Rcode, "opcode UPDATE")

	// A response: no reply; the next query is answered, so the response
	// was read and dropped (counted) before it.
	c, err := net.Dial("udp", udp)
	require.NoError(t, err)
	defer c.Close()
	m = new(dns.Msg)
	m.SetQuestion("web.pir.", dns.TypeA)
	m.Response = true
	b, err := m.Pack()
	require.NoError(t, err)
	_, err = c.Write(b)
	require.NoError(t, err)
	assert.Equal(t, dns.RcodeSuccess, exchange(t, "udp", udp, func() *dns.Msg {
		q := new(dns.Msg)
		q.SetQuestion("web.pir.", dns.TypeA)
		return q
	}()).Rcode)

	s := a.Stats()
	assert.Equal(t, uint64(2), s.DNSFormErr)
	assert.Equal(t, uint64(3), s.DNSNotImp)
	require.Eventually(t, func() bool { return a.Stats().DNSIgnored == 1 }, 5e9, 1e6)
}

// Queries run in parallel with membership changes share the cached
// records: the race detector sees no write to them.
func TestDNSConcurrent(t *testing.T) {
	a := newAgent(t, Config{})
	v := feed(t, a, "big", bigGroup(50)...)
	var wg sync.WaitGroup
	for _, qtype := range []uint16{dns.TypeSRV, dns.TypeA, dns.TypeSRV, dns.TypeTXT} {
		wg.Go(func() {
			req := new(dns.Msg)
			req.SetQuestion("big.pir.", qtype)
			if qtype == dns.TypeTXT {
				req.SetQuestion("m001.big.pir.", qtype)
			}
			for i := range 200 {
				local := net.Addr(&net.UDPAddr{})
				if i%2 == 0 {
					local = &net.TCPAddr{}
				}
				w := &memWriter{local: local}
				a.DNS().ServeDNS(w, req)
				assert.NoError(t, w.err)
			}
		})
	}
	for i := range 200 {
		m := bigGroup(50)[i%50]
		m.Meta = map[string]string{"i": strconv.Itoa(i)}
		a.apply(v, discovery.Event{Type: discovery.Updated, Member: m})
	}
	wg.Wait()
}

// A TCP message's length is 16 bits: an answer for 2000 members is cut
// to 65535 bytes with TC rather than not sent at all.
func TestDNSHugeGroupOverTCP(t *testing.T) {
	a := newAgent(t, Config{})
	feed(t, a, "huge", bigGroup(2000)...)
	req := new(dns.Msg)
	req.SetQuestion("huge.pir.", dns.TypeSRV)
	w := &memWriter{local: &net.TCPAddr{}}
	a.DNS().ServeDNS(w, req)
	require.NoError(t, w.err)
	require.Len(t, w.out, 1, "a reply")
	assert.LessOrEqual(t, len(w.out[0]), dns.MaxMsgSize)
	assert.True(t, w.msgs[0].Truncated)
	assert.Greater(t, len(w.msgs[0].Answer), 500)
}

func TestEndpoint(t *testing.T) {
	for _, tc := range []struct {
		comms, src, want string
		port             uint16
	}{
		{"tcp://198.18.0.5:80", "198.18.0.9:1975", "198.18.0.5", 80},
		{"tcp://[fd42::5]:80", "198.18.0.9:1975", "fd42::5", 80},
		{"tcp://[fe80::5%25eth0]:80", "198.18.0.9:1975", "fe80::5", 80},
		{"tcp://0.0.0.0:80", "198.18.0.9:1975", "198.18.0.9", 80},
		{"tcp://host.example:80", "198.18.0.9:1975", "198.18.0.9", 80},
		{"tcp://127.0.0.1:80", "198.18.0.9:1975", "198.18.0.9", 80}, // from elsewhere: not believed
		{"tcp://127.0.0.1:80", "127.0.0.1:1975", "127.0.0.1", 80},   // from this host
		{"tcp://[::ffff:198.18.0.5]:80", "198.18.0.9:1975", "198.18.0.5", 80},
		{"tcp://198.18.0.5", "198.18.0.9:1975", "198.18.0.5", 0},
	} {
		m := fake("x", "198.18.0.1", 1, score.Healthy, nil)
		u, err := url.Parse(tc.comms)
		require.NoError(t, err)
		m.CommsURI = u
		m.Addr = netip.MustParseAddrPort(tc.src)
		addr, port := endpoint(m)
		assert.Equal(t, tc.want, addr.String(), tc.comms)
		assert.Equal(t, tc.port, port, tc.comms)
	}
}
