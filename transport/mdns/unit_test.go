package mdns

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/transport"
)

// bareConn is a Conn without sockets or goroutines, with one fake link,
// for tests that drive its engine directly. It sends nothing: it has no
// address family open.
func bareConn(t testing.TB, cfg Config) *Conn {
	t.Helper()
	if cfg.Group == "" {
		cfg.Group = "test"
	}
	explicit := cfg.Service != ""
	cfg = cfg.withDefaults()
	cfg.Logger = hclog.NewNullLogger()
	svc, err := parseServiceType(cfg.Service)
	require.NoError(t, err)
	c := &Conn{
		cfg: cfg, svc: svc, log: cfg.Logger,
		sub:  escapeLabel(groupSubtype(cfg.Group)) + "._sub." + svc.fqdn(),
		out:  make(chan delivery, outQueue),
		done: make(chan struct{}),
		links: map[int]*iface{1: {
			ifi: net.Interface{Index: 1, Name: "lo0", Flags: net.FlagUp | net.FlagMulticast},
			v4:  []netip.Addr{netip.MustParseAddr("198.18.255.1")},
			v6:  []netip.Addr{netip.MustParseAddr("fd42::1"), netip.MustParseAddr("fe80::1")},
			prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("fd42::/64"),
				netip.MustParsePrefix("fe80::/64")},
			on:   [2]bool{true, true},
			best: [2]netip.Addr{netip.MustParseAddr("198.18.255.1"), netip.MustParseAddr("fd42::1")},
		}},
	}
	c.browse = c.sub
	if explicit {
		c.browse = svc.fqdn()
		c.allGroups = cfg.AllGroups
	}
	c.e.init(c, time.Now())
	return c
}

// drain returns what the Conn queued for Receive.
func drain(c *Conn) []delivery {
	var out []delivery
	for {
		select {
		case d := <-c.out:
			out = append(out, d)
		default:
			return out
		}
	}
}

func TestParseServiceType(t *testing.T) {
	for _, ok := range []string{"_http._tcp", "_http._tcp.local", "_http._tcp.local.", "_pir._udp", "_a1._tcp", "_x-y-z._udp", "_123456789abcdef._tcp"} {
		_, err := parseServiceType(ok)
		assert.NoError(t, err, ok)
	}
	for _, bad := range []string{"", "_http", "http._tcp", "_._tcp", "_http._sctp", "_http._tcp.example.", "_-a._tcp", "_a-._tcp",
		"_a--b._tcp", "_123._tcp", "_a_b._tcp", "_123456789abcdefg._tcp", "_a.b._tcp"} {
		_, err := parseServiceType(bad)
		assert.Error(t, err, bad)
	}
	st, _ := parseServiceType("_http._tcp.local.")
	assert.Equal(t, "_http._tcp.local.", st.fqdn())
}

func TestGroupSubtype(t *testing.T) {
	assert.Equal(t, "_web", groupSubtype("web"))
	assert.Equal(t, "_my-group-2", groupSubtype("my-group-2"))
	for _, g := range []string{"Web", "web!", "web farm", "gruppe-ä", strings.Repeat("x", 80)} {
		s := groupSubtype(g)
		assert.LessOrEqual(t, len(s), maxLabel, g)
		assert.True(t, strings.HasSuffix(s, "-"+shortHash(g)), "%q -> %q", g, s)
		assert.Equal(t, s, strings.ToLower(s))
	}
	assert.NotEqual(t, groupSubtype("Web"), groupSubtype("web"))
	assert.NotEqual(t, groupSubtype(strings.Repeat("x", 80)), groupSubtype(strings.Repeat("x", 81)))
}

func TestLabels(t *testing.T) {
	for _, raw := range []string{"plain", "My Printer (2)", `a.b\c"d`, "café", "\x00\x7f\xff", ""} {
		esc := escapeLabel(raw)
		l, rest, err := firstLabel(esc + "._pir._udp.local.")
		require.NoError(t, err)
		assert.Equal(t, raw, l)
		assert.Equal(t, "_pir._udp.local.", rest)
		// github.com/miekg/dns packs and unpacks it the same way.
		if raw == "" {
			continue
		}
		rr := &dns.PTR{Hdr: dns.RR_Header{Name: "x.local.", Rrtype: dns.TypePTR, Class: dns.ClassINET}, Ptr: esc + ".local."}
		b := make([]byte, 512)
		n, err := dns.PackRR(rr, b, 0, nil, false)
		require.NoError(t, err)
		back, _, err := dns.UnpackRR(b[:n], 0)
		require.NoError(t, err)
		assert.Equal(t, esc+".local.", back.(*dns.PTR).Ptr)
	}
	_, _, err := firstLabel(`bad\`)
	assert.Error(t, err)
	_, _, err = firstLabel(`bad\999`)
	assert.Error(t, err, "no byte is 999")

	assert.Equal(t, "svc (2)", renamed("svc", 1, false))
	assert.Equal(t, "host-3", renamed("host", 2, true))
	long := strings.Repeat("é", 40) // 80 bytes
	r := renamed(long, 1, false)
	assert.LessOrEqual(t, len(r), maxLabel)
	assert.True(t, strings.HasSuffix(r, " (2)"))
	assert.Equal(t, "my-host-1", hostLabel("My_Host.1", 63))
	assert.Equal(t, "My-Printer-"+shortHash(`my\ printer._ipp._tcp.local.`), foreignID("My Printer", `My\ Printer._ipp._tcp.local.`))
}

func TestTXT(t *testing.T) {
	m := &codec.Message{ID: "id1", Group: "g", Health: "tcp://h:1", Comms: "tcp://c:2",
		Meta: map[string]string{"b": "2", "a": "1", "long": strings.Repeat("x", 300), "sp ace": "v=w"}}
	txt, dropped, err := buildTXT(m)
	require.NoError(t, err)
	assert.Equal(t, []string{"txtvers=1", "id=id1", "g=g", "health=tcp://h:1", "comms=tcp://c:2", "m.a=1", "m.b=2", "m.sp ace=v=w"}, txt)
	assert.Equal(t, []string{"long"}, dropped)

	p := parseTXT(append(txt, "ID=second", "=empty", "flag", "bad=\xff"))
	id, _ := p.get("id")
	assert.Equal(t, "id1", id, "the first occurrence of a key wins, whatever its case")
	assert.Equal(t, map[string]string{"a": "1", "b": "2", "sp ace": "v=w"}, p.meta(true))
	foreignMeta := p.meta(false)
	assert.Equal(t, "", foreignMeta["flag"])
	assert.Equal(t, "\uFFFD", foreignMeta["bad"])
	assert.NotContains(t, foreignMeta, "")

	_, _, err = buildTXT(&codec.Message{ID: "i", Group: "g", Health: "tcp://" + strings.Repeat("h", 260)})
	assert.ErrorIs(t, err, transport.ErrTooLarge)
}

func TestRecordsRoundTrip(t *testing.T) {
	for _, r := range []record{
		{Name: "_pir._udp.local.", Type: dns.TypePTR, Target: `a\ b._pir._udp.local.`, TTL: 120},
		{Name: "a._pir._udp.local.", Type: dns.TypeSRV, Target: "h.local.", Port: 80, Flush: true, TTL: 120},
		{Name: "a._pir._udp.local.", Type: dns.TypeTXT, Txt: []string{`back\slash`, `"quote"`, "é", ""}, Flush: true, TTL: 120},
		{Name: "h.local.", Type: dns.TypeA, Addr: netip.MustParseAddr("198.18.0.1"), TTL: 120},
		{Name: "h.local.", Type: dns.TypeAAAA, Addr: netip.MustParseAddr("fe80::1"), TTL: 120},
		{Name: `dot\.in\ label\ caf\195\169._pir._udp.local.`, Type: dns.TypeSRV, Target: `h\009.local.`, Port: 1, Prio: 2, Weight: 3, TTL: 7},
	} {
		// Packed by miekg/dns, read by us.
		b, err := (&dns.Msg{Answer: []dns.RR{r.rr(r.TTL, r.Flush)}}).Pack()
		require.NoError(t, err)
		m, err := parseMessage(b)
		require.NoError(t, err)
		require.Len(t, m.Answers, 1)
		back := m.Answers[0]
		assert.True(t, back.sameData(&r), "%+v -> %+v", r, back)
		assert.Equal(t, r.Flush, back.Flush)
		assert.Equal(t, r.TTL, back.TTL)

		// Packed by us, read by miekg/dns.
		msgs, dropped := packMessages(responseHdr, nil, []record{r, r}, nil, MaxMessage, false)
		require.Zero(t, dropped)
		require.Len(t, msgs, 1)
		var whole dns.Msg
		require.NoError(t, whole.Unpack(msgs[0]))
		require.Len(t, whole.Answer, 2)
		for _, rr := range whole.Answer {
			got, ok := fromRR(rr)
			require.True(t, ok, "%v", rr)
			assert.True(t, got.sameData(&r), "%+v -> %+v", r, got)
			assert.Equal(t, r.Flush, got.Flush)
			assert.Equal(t, r.TTL, got.TTL)
		}
		assert.Less(t, len(msgs[0]), 12+2*len(b[12:]), "the second copy's name is compressed")
	}
}

// RFC 6762 §8.2: records compare by class, type, then rdata bytes; the
// longer list wins a tie.
func TestCompareProbeRecords(t *testing.T) {
	a1 := record{Name: "h.local.", Type: dns.TypeA, Addr: netip.MustParseAddr("169.254.99.200")}
	a2 := record{Name: "h.local.", Type: dns.TypeA, Addr: netip.MustParseAddr("169.254.200.50")}
	assert.Equal(t, -1, compareProbeRecords([]record{a1}, []record{a2}))
	assert.Equal(t, 1, compareProbeRecords([]record{a2}, []record{a1}))
	assert.Equal(t, 0, compareProbeRecords([]record{a1, a2}, []record{a2, a1}))
	assert.Equal(t, 1, compareProbeRecords([]record{a1, a2}, []record{a1}))
	aaaa := record{Name: "h.local.", Type: dns.TypeAAAA, Addr: netip.MustParseAddr("fe80::1")}
	assert.Equal(t, -1, compareProbeRecords([]record{a2}, []record{aaaa}), "type A (1) < AAAA (28)")
}

func TestPackMessagesSplits(t *testing.T) {
	var rrs []record
	for i := range 40 {
		rrs = append(rrs, record{Name: "n" + strings.Repeat("x", i) + ".local.", Type: dns.TypeA, Addr: netip.MustParseAddr("198.18.0.1"), TTL: 120, Flush: true})
	}
	msgs, dropped := packMessages(msgHeader{}, []question{{Name: "q.local.", Type: typePTR}}, rrs, nil, 512, true)
	assert.Zero(t, dropped)
	require.Greater(t, len(msgs), 2)
	total := 0
	for i, b := range msgs {
		assert.LessOrEqual(t, len(b), 512)
		var m dns.Msg
		require.NoError(t, m.Unpack(b))
		assert.Equal(t, i < len(msgs)-1, m.Truncated, "TC on all but the last")
		assert.Equal(t, i == 0, len(m.Question) == 1, "the question in the first only")
		total += len(m.Answer)
	}
	assert.Equal(t, 40, total)

	huge := record{Name: "t.local.", Type: dns.TypeTXT, Txt: []string{strings.Repeat("x", 255), strings.Repeat("y", 255), strings.Repeat("z", 255)}, TTL: 1}
	msgs, dropped = packMessages(responseHdr, nil, []record{rrs[0], huge}, nil, 512, false)
	assert.Zero(t, dropped, "a record larger than the limit goes alone")
	assert.Len(t, msgs, 2)

	huge.Txt = slices.Repeat(huge.Txt, 12) // 9,216 bytes of TXT, more than any message holds
	bad := record{Name: "a..local.", Type: dns.TypeA, Addr: netip.MustParseAddr("198.18.0.1")}
	msgs, dropped = packMessages(responseHdr, nil, []record{rrs[0], bad, huge}, nil, 512, false)
	assert.Equal(t, 2, dropped, "the record with an empty label and the one too large for any message")
	require.Len(t, msgs, 1, "the empty message the record too large left is not sent")
	var m dns.Msg
	require.NoError(t, m.Unpack(msgs[0]))
	require.Len(t, m.Answer, 1)
	assert.Equal(t, rrs[0].Name, m.Answer[0].Header().Name)
}

func TestCacheFlushAndGoodbye(t *testing.T) {
	var c cache
	c.init(10)
	now := time.Now()
	in := inbound{src: netip.MustParseAddrPort("198.18.0.1:5353")}
	old := record{Name: "h.local.", Type: dns.TypeA, Addr: netip.MustParseAddr("198.18.0.1"), TTL: 120}
	fresh := record{Name: "h.local.", Type: dns.TypeA, Addr: netip.MustParseAddr("198.18.0.2"), TTL: 120, Flush: true}
	c.put(old, in, now)
	c.put(fresh, in, now.Add(500*time.Millisecond))
	c.flush(fresh.key(), []record{fresh}, now.Add(500*time.Millisecond))
	assert.Len(t, c.live(old.key(), now.Add(1600*time.Millisecond)), 2, "a record received within the last second is not flushed")

	later := now.Add(3 * time.Second)
	c.put(fresh, in, later)
	c.flush(fresh.key(), []record{fresh}, later)
	assert.Len(t, c.live(old.key(), later.Add(900*time.Millisecond)), 2, "flushed records live one more second")
	live := c.live(old.key(), later.Add(1100*time.Millisecond))
	require.Len(t, live, 1)
	assert.Equal(t, fresh.Addr, live[0].rec.Addr)

	c.bye(fresh, later)
	for _, e := range c.live(fresh.key(), later) {
		assert.NotEqual(t, fresh.Addr, e.rec.Addr, "a goodbye hides the record at once")
	}
	assert.Len(t, c.expire(later.Add(1100*time.Millisecond)), 2)
	assert.Zero(t, c.n)

	for i := range 11 {
		_, ok := c.put(record{Name: "n.local.", Type: dns.TypeA, Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}), TTL: 1}, in, now)
		assert.Equal(t, i < 10, ok)
	}
}

// An instance whose host is known only by name in its TXT URIs (a member
// listening on every address) gets the address of the host; one that
// appears over both families keeps the address chosen first.
func TestSynthesizeLocalHost(t *testing.T) {
	c := bareConn(t, Config{})
	e := &c.e
	inst := "m1._pir._udp.local."
	rrs := []dns.RR{
		&dns.PTR{Hdr: hdr(c.browse, dns.TypePTR, 120, false), Ptr: inst},
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV, 120, true), Port: 4000, Target: "box-pir-1.local."},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT, 120, true), Txt: []string{"txtvers=1", "id=m1", "g=test", "health=tcp://box-pir-1.local:4000", "comms=http://box-pir-1.local:8080/x"}},
		&dns.AAAA{Hdr: hdr("box-pir-1.local.", dns.TypeAAAA, 120, true), AAAA: netip.MustParseAddr("fe80::2").AsSlice()},
		&dns.A{Hdr: hdr("box-pir-1.local.", dns.TypeA, 120, true), A: netip.MustParseAddr("198.18.0.7").AsSlice()},
	}
	b, err := (&dns.Msg{MsgHdr: dnsResponseHdr, Answer: rrs}).Pack()
	require.NoError(t, err)
	m, err := parseMessage(b)
	require.NoError(t, err)
	e.response(inbound{msg: m, src: netip.MustParseAddrPort("[fe80::2%lo0]:5353"), ifIndex: 1, v6: true}, time.Now())
	out := drain(c)
	require.Len(t, out, 1)
	var msg codec.Message
	require.NoError(t, (Codec{}).Decode(out[0].b, &msg))
	assert.Equal(t, "m1", msg.ID)
	assert.Equal(t, "tcp://[fe80::2%25lo0]:4000", msg.Health, "heard over IPv6 only: its link-local address, zoned")
	assert.Equal(t, "http://[fe80::2%25lo0]:8080/x", msg.Comms)

	// The same over IPv4: the address chosen stays.
	e.response(inbound{msg: m, src: netip.MustParseAddrPort("198.18.0.7:5353"), ifIndex: 1}, time.Now())
	out = drain(c)
	require.Len(t, out, 1)
	require.NoError(t, (Codec{}).Decode(out[0].b, &msg))
	assert.Equal(t, "tcp://[fe80::2%25lo0]:4000", msg.Health)
	assert.Equal(t, netip.MustParseAddrPort("[fe80::2%lo0]:5353"), out[0].src, "the source of the family of the address")
}

// A pir member of another group is ignored, unless the Conn browses a
// service type with AllGroups; then it is delivered as a member of the
// Conn's group, an extended (pir) one, while a foreign service is not
// extended.
func TestSynthesizeAllGroups(t *testing.T) {
	for _, all := range []bool{false, true} {
		c := bareConn(t, Config{Service: "_pir._udp", AllGroups: all})
		inst, foreign := "m1._pir._udp.local.", "printer._pir._udp.local."
		rrs := []dns.RR{
			&dns.PTR{Hdr: hdr(c.browse, dns.TypePTR, 120, false), Ptr: inst},
			&dns.SRV{Hdr: hdr(inst, dns.TypeSRV, 120, true), Port: 4000, Target: "box.local."},
			&dns.TXT{Hdr: hdr(inst, dns.TypeTXT, 120, true), Txt: []string{"txtvers=1", "id=m1", "g=other", "health=tcp://198.18.0.7:4000", "comms=tcp://198.18.0.7:4000"}},
			&dns.PTR{Hdr: hdr(c.browse, dns.TypePTR, 120, false), Ptr: foreign},
			&dns.SRV{Hdr: hdr(foreign, dns.TypeSRV, 120, true), Port: 631, Target: "box.local."},
			&dns.TXT{Hdr: hdr(foreign, dns.TypeTXT, 120, true), Txt: []string{"rp=ipp"}},
			&dns.A{Hdr: hdr("box.local.", dns.TypeA, 120, true), A: netip.MustParseAddr("198.18.0.7").AsSlice()},
		}
		b, err := (&dns.Msg{MsgHdr: dnsResponseHdr, Answer: rrs}).Pack()
		require.NoError(t, err)
		m, err := parseMessage(b)
		require.NoError(t, err)
		c.e.response(inbound{msg: m, src: netip.MustParseAddrPort("198.18.0.7:5353"), ifIndex: 1}, time.Now())
		extended := map[string]bool{}
		for _, d := range drain(c) {
			var msg codec.Message
			require.NoError(t, (Codec{}).Decode(d.b, &msg))
			assert.Equal(t, "test", msg.Group)
			extended[msg.ID] = msg.Extended
		}
		want := map[string]bool{"printer-" + shortHash(foreign): false}
		if all {
			want["m1"] = true
		}
		assert.Equal(t, want, extended, "AllGroups %v", all)
	}
}

// Metadata of a foreign service is dropped, longest first, until the
// synthesized message fits SynthMax.
func TestSynthesizeTrimsMetadata(t *testing.T) {
	c := bareConn(t, Config{Service: "_http._tcp", SynthMax: 200})
	inst := "w._http._tcp.local."
	rrs := []dns.RR{
		&dns.PTR{Hdr: hdr("_http._tcp.local.", dns.TypePTR, 120, false), Ptr: inst},
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV, 120, true), Port: 80, Target: "w.local."},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT, 120, true), Txt: []string{"a=1", "big=" + strings.Repeat("b", 150), "c=3"}},
		&dns.A{Hdr: hdr("w.local.", dns.TypeA, 120, true), A: netip.MustParseAddr("198.18.0.9").AsSlice()},
	}
	b, err := (&dns.Msg{MsgHdr: dnsResponseHdr, Answer: rrs}).Pack()
	require.NoError(t, err)
	m, err := parseMessage(b)
	require.NoError(t, err)
	c.e.response(inbound{msg: m, src: netip.MustParseAddrPort("198.18.0.9:5353"), ifIndex: 1}, time.Now())
	out := drain(c)
	require.Len(t, out, 1)
	var msg codec.Message
	require.NoError(t, (Codec{MaxSize: 200}).Decode(out[0].b, &msg))
	assert.Equal(t, map[string]string{"a": "1", "c": "3"}, msg.Meta)
	assert.Equal(t, "mdns://198.18.0.9:80", msg.Health)
	assert.Equal(t, "tcp://198.18.0.9:80", msg.Comms)
}

// Packets python3-zeroconf 0.47.3 sent, captured in a private namespace:
// its probe, announcement, browse queries and goodbye.
func zeroconfPackets(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "zeroconf-*.bin"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := make(map[string][]byte)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		out[filepath.Base(f)] = b
	}
	return out
}

// A real zeroconf announcement and goodbye make an announcement and,
// once checked, a goodbye.
func TestZeroconfPackets(t *testing.T) {
	pkts := zeroconfPackets(t)
	c := bareConn(t, Config{Service: "_http._tcp"})
	src := netip.MustParseAddrPort("198.18.255.1:5353")
	feed := func(name string) []delivery {
		m, err := parseMessage(pkts[name])
		require.NoError(t, err, name)
		c.e.response(inbound{msg: m, src: src, ifIndex: 1}, time.Now())
		return drain(c)
	}
	out := feed("zeroconf-announce.bin")
	require.Len(t, out, 1)
	var msg codec.Message
	require.NoError(t, (Codec{}).Decode(out[0].b, &msg))
	assert.Equal(t, "Zc-Web-Server-"+shortHash(`zc\ web\ server._http._tcp.local.`), msg.ID)
	assert.Equal(t, "mdns://198.18.255.1:8080", msg.Health)
	assert.Equal(t, map[string]string{"path": "/x", "k": "vé", "flag": ""}, msg.Meta)

	// The goodbye is checked first: delivered when the records have not
	// come back by checkDeadline.
	t0 := time.Now()
	require.Empty(t, feed("zeroconf-goodbye.bin"))
	c.e.due(t0.Add(checkRecheck + 100*time.Millisecond))
	require.Empty(t, drain(c), "still checking")
	c.e.due(t0.Add(checkDeadline + 200*time.Millisecond))
	out = drain(c)
	require.Len(t, out, 1)
	require.NoError(t, (Codec{}).Decode(out[0].b, &msg))
	assert.Equal(t, codec.Goodbye, msg.Kind)

	for _, q := range []string{"zeroconf-probe.bin", "zeroconf-browse-qu.bin", "zeroconf-browse-known-answer.bin"} {
		m, err := parseMessage(pkts[q])
		require.NoError(t, err)
		assert.True(t, m.Query, q)
	}
}

// python-zeroconf 0.47 answers a browse query with an NSEC record (no
// AAAA for its host) whose type bitmap starts with an empty block, which
// miekg/dns refuses. testdata/zeroconf-answer-nsec.bin is its answer to
// a PTR query for _http._tcp.local, captured in a private namespace. The
// NSEC record, of a type the transport does not use, is skipped unread
// (not counted as a bad record); the rest of the message makes the
// service a member.
func TestZeroconfNSEC(t *testing.T) {
	b := zeroconfPackets(t)["zeroconf-answer-nsec.bin"]
	var whole dns.Msg
	require.ErrorContains(t, whole.Unpack(b), "NSEC", "miekg/dns refuses the message as a whole")

	m, err := parseMessage(b)
	require.NoError(t, err)
	assert.Zero(t, m.Bad, "the NSEC record is not read")
	var types []uint16
	for _, r := range append(append([]record(nil), m.Answers...), m.Additional...) {
		types = append(types, r.Type)
	}
	assert.ElementsMatch(t, []uint16{dns.TypePTR, dns.TypeSRV, dns.TypeA, dns.TypeTXT}, types)

	c := bareConn(t, Config{Service: "_http._tcp"})
	c.e.response(inbound{msg: m, src: netip.MustParseAddrPort("198.18.255.1:5353"), ifIndex: 1}, time.Now())
	out := drain(c)
	require.Len(t, out, 1)
	var msg codec.Message
	require.NoError(t, (Codec{}).Decode(out[0].b, &msg))
	assert.Equal(t, "Intranet-"+shortHash(`intranet._http._tcp.local.`), msg.ID)
	assert.Equal(t, "tcp://198.18.255.1:8080", msg.Comms)
	assert.Equal(t, map[string]string{"path": "/wiki"}, msg.Meta)
}

// parseMessage keeps the records that parse around one that does not,
// in every section, and refuses a message whose framing is broken.
func TestParseRecordByRecord(t *testing.T) {
	good := &dns.Msg{MsgHdr: dnsResponseHdr, Answer: []dns.RR{
		&dns.PTR{Hdr: hdr("_http._tcp.local.", dns.TypePTR, 120, false), Ptr: `a._http._tcp.local.`},
	}, Extra: []dns.RR{
		&dns.A{Hdr: hdr("a.local.", dns.TypeA, 120, true), A: netip.MustParseAddr("198.18.0.5").AsSlice()},
	}}
	b, err := good.Pack()
	require.NoError(t, err)
	// Splice a record with bad data (an SRV of 3 bytes) after the answer.
	bad := append([]byte("\x01x\x05local\x00"), 0, 33, 0, 1, 0, 0, 0, 120, 0, 3, 1, 2, 3)
	ptrEnd := len(b) - (len("\x01a\x05local\x00") + 10 + 4)
	spliced := append(append(append([]byte(nil), b[:ptrEnd]...), bad...), b[ptrEnd:]...)
	spliced[7]++ // two answers
	m, err := parseMessage(spliced)
	require.NoError(t, err)
	assert.Equal(t, 1, m.Bad)
	require.Len(t, m.Answers, 1)
	assert.Equal(t, uint16(dns.TypePTR), m.Answers[0].Type)
	require.Len(t, m.Additional, 1)
	assert.Equal(t, uint16(dns.TypeA), m.Additional[0].Type)

	for name, cut := range map[string][]byte{
		"record runs past the end": spliced[:len(spliced)-2],
		"header only, counts lie":  spliced[:12],
		"short header":             spliced[:5],
	} {
		_, err := parseMessage(cut)
		assert.ErrorIs(t, err, errMalformed, name)
	}
}

func TestRawFraming(t *testing.T) {
	for _, p := range [][]byte{nil, []byte("x"), make([]byte, MaxRaw)} {
		b := appendRaw(nil, p)
		assert.Len(t, b, len(p)+rawOverhead)
		got, ok := parseRaw(b)
		require.True(t, ok)
		assert.Equal(t, len(p), len(got))
		// It is a DNS message too, which other software can skip.
		var m dns.Msg
		require.NoError(t, m.Unpack(b))
		assert.Equal(t, rawName, m.Answer[0].Header().Name)
	}
	b := appendRaw(nil, []byte("abc"))
	_, ok := parseRaw(b[:len(b)-1])
	assert.False(t, ok, "a cut raw message")
	_, ok = parseRaw(zeroconfPackets(t)["zeroconf-announce.bin"])
	assert.False(t, ok)
}

// The TXT record is the same whichever link a Group sends through: a URI
// the Group writes for each link (the member listens on every address)
// becomes HOST.local, and a URI naming one address whatever the link
// stays literal, even when sent through the link whose address it names.
// Rendered as HOST.local there and literally on the other link, the TXT
// record changed with every link sent through (and each change was
// announced again); with avahi beside it, an announcement of ours that came
// back after such a change was taken for another responder's and the
// member renamed itself (e2e TestMDNSAvahiInterop).
func TestPublishedTXTSameOnEveryLink(t *testing.T) {
	v4 := transport.Link{Index: 1, Name: "eth0", Addr: netip.MustParseAddr("198.18.0.2")}
	v6 := transport.Link{Index: 1, Name: "eth0", Addr: netip.MustParseAddr("fd42::2")}
	perLink := func(l transport.Link, port int) string {
		return "tcp://" + netip.AddrPortFrom(l.Addr, uint16(port)).String()
	}
	for _, order := range [][]transport.Link{{v4, v6}, {v6, v4}} {
		e := &bareConn(t, Config{HostName: "box"}).e
		var txts [][]string
		for range 3 {
			for _, l := range order {
				m := codec.Message{Kind: codec.Announce, Group: "test", ID: "m1",
					Health: perLink(l, 4000), Comms: "tcp://198.18.0.2:8080"}
				require.NoError(t, e.publish(m, &l, time.Now()))
				txts = append(txts, slices.Clone(e.pub.txt))
			}
		}
		want := []string{"txtvers=1", "id=m1", "g=test", "health=tcp://box.local:4000", "comms=tcp://198.18.0.2:8080"}
		// The first send cannot tell: through the IPv4 link first, the
		// comms URI names that link's address as a per-link one would.
		for i, txt := range txts[1:] {
			assert.Equal(t, want, txt, "send %d, links %s then %s", i+2, order[0].Addr, order[1].Addr)
		}
	}

	// Two links of one family: the same.
	c := bareConn(t, Config{HostName: "box"})
	c.links[2] = &iface{ifi: net.Interface{Index: 2, Name: "eth1", Flags: net.FlagUp | net.FlagMulticast},
		v4: []netip.Addr{netip.MustParseAddr("192.0.2.9")}, prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		on: [2]bool{true, false}, best: [2]netip.Addr{netip.MustParseAddr("192.0.2.9")}}
	eth1 := transport.Link{Index: 2, Name: "eth1", Addr: netip.MustParseAddr("192.0.2.9")}
	for i, l := range []transport.Link{v4, eth1, v4, eth1} {
		m := codec.Message{Kind: codec.Announce, Group: "test", ID: "m1", Health: perLink(l, 4000), Comms: "tcp://198.18.0.2:8080"}
		require.NoError(t, c.e.publish(m, &l, time.Now()))
		if i > 0 {
			assert.Equal(t, []string{"txtvers=1", "id=m1", "g=test", "health=tcp://box.local:4000", "comms=tcp://198.18.0.2:8080"},
				c.e.pub.txt, "send %d through %s", i+1, l.Name)
		}
	}

	// Through one link only, a URI naming the link's address is the host
	// name's, as before.
	e := &bareConn(t, Config{HostName: "box"}).e
	m := codec.Message{Kind: codec.Announce, Group: "test", ID: "m1", Health: perLink(v4, 4000), Comms: "tcp://198.18.0.2:8080"}
	require.NoError(t, e.publish(m, &v4, time.Now()))
	assert.Equal(t, []string{"txtvers=1", "id=m1", "g=test", "health=tcp://box.local:4000", "comms=tcp://box.local:8080"}, e.pub.txt)
}

// Records a change replaced, coming back within staleFor (our own
// announcement, looped back after the change), are no conflict; another
// TXT record for our instance is, and so are the replaced records once
// staleFor has passed.
func TestStaleRecordsNoConflict(t *testing.T) {
	c := bareConn(t, Config{HostName: "box"})
	e := &c.e
	now := time.Now()
	announce := func(role string) {
		m := codec.Message{Kind: codec.Announce, Group: "test", ID: "m1", Health: "tcp://198.18.255.1:4000",
			Comms: "tcp://198.18.255.1:4000", Meta: map[string]string{"role": role}}
		require.NoError(t, e.publish(m, nil, now))
	}
	announce("a")
	e.pub.state = published
	oldTXT := slices.Clone(e.pub.txt)
	announce("b") // Group.Update: the TXT record changes
	require.Equal(t, announcing, e.pub.state)
	inst := e.pub.instFQDN(c.svc)
	claim := func(txt []string, at time.Time) {
		b, err := (&dns.Msg{MsgHdr: dnsResponseHdr, Answer: []dns.RR{
			&dns.TXT{Hdr: hdr(inst, dns.TypeTXT, 120, true), Txt: txt},
		}}).Pack()
		require.NoError(t, err)
		m, err := parseMessage(b)
		require.NoError(t, err)
		e.response(inbound{msg: m, src: netip.MustParseAddrPort("198.18.255.1:5353"), ifIndex: 1}, at)
	}

	claim(oldTXT, now.Add(10*time.Millisecond))
	assert.Zero(t, c.Stats().Conflicts, "our own announcement, back after the change")
	assert.Equal(t, announcing, e.pub.state)

	claim(append(slices.Clone(oldTXT[:len(oldTXT)-1]), "m.role=c"), now.Add(20*time.Millisecond))
	assert.Equal(t, uint64(1), c.Stats().Conflicts, "a TXT record we never published")
	assert.Equal(t, probing, e.pub.state)

	e.pub.state = published
	claim(oldTXT, now.Add(staleFor+time.Millisecond))
	assert.Equal(t, uint64(2), c.Stats().Conflicts, "stale for staleFor only")
}
