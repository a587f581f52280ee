package mdns

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/miekg/dns"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/codectest"
)

// seedMessages are real and typical mDNS messages: python3-zeroconf's, an
// avahi-style announcement (with NSEC and HINFO records, IPv6 addresses
// and the type enumeration), a pir member's announcement and probe, and
// known-bad inputs.
func seedMessages(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, b := range zeroconfPackets(f) {
		seeds = append(seeds, b)
	}
	inst := `Avahi\ Box._ssh._tcp.local.`
	avahi := &dns.Msg{MsgHdr: dnsResponseHdr, Answer: []dns.RR{
		&dns.PTR{Hdr: hdr("_services._dns-sd._udp.local.", dns.TypePTR, 4500, false), Ptr: "_ssh._tcp.local."},
		&dns.PTR{Hdr: hdr("_ssh._tcp.local.", dns.TypePTR, 4500, false), Ptr: inst},
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV, 120, true), Port: 22, Target: "avahi-box.local."},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT, 4500, true), Txt: []string{""}},
		&dns.AAAA{Hdr: hdr("avahi-box.local.", dns.TypeAAAA, 120, true), AAAA: netip.MustParseAddr("fd42::5").AsSlice()},
		&dns.A{Hdr: hdr("avahi-box.local.", dns.TypeA, 120, true), A: netip.MustParseAddr("198.18.0.5").AsSlice()},
		&dns.HINFO{Hdr: hdr("avahi-box.local.", dns.TypeHINFO, 120, true), Cpu: "X86_64", Os: "LINUX"},
	}, Extra: []dns.RR{
		&dns.NSEC{Hdr: hdr("avahi-box.local.", dns.TypeNSEC, 120, true), NextDomain: "avahi-box.local.", TypeBitMap: []uint16{dns.TypeA, dns.TypeAAAA}},
	}}
	if b, err := avahi.Pack(); err == nil {
		seeds = append(seeds, b)
	}
	c := bareConn(f, Config{})
	m := member("seed", 4000)
	m.Meta = map[string]string{"role": "db"}
	if err := c.e.publish(m, nil, time.Now()); err == nil {
		p := c.e.pub
		recs := c.e.records(p, c.links[1])
		if b, err := (&dns.Msg{MsgHdr: dnsResponseHdr, Answer: c.e.rrs(recs, -1, true)}).Pack(); err == nil {
			seeds = append(seeds, b)
		}
		probe := &dns.Msg{Question: []dns.Question{{Name: p.instFQDN(c.svc), Qtype: dns.TypeANY, Qclass: dns.ClassINET}},
			Ns: c.e.rrs(c.e.uniqueRecords(p, c.links[1]), -1, false)}
		if b, err := probe.Pack(); err == nil {
			seeds = append(seeds, b)
		}
	}
	seeds = append(seeds,
		nil, []byte{0}, make([]byte, 12),
		[]byte("\x00\x00\x84\x00\x00\x00\x00\x01\x00\x00\x00\x00\xc0\x0c"), // a pointer loop
		appendRaw(nil, []byte("opaque")),
	)
	return seeds
}

// FuzzParseMessage: the decoder, record by record, never panics; on a
// message miekg/dns parses whole it skips nothing and keeps the records
// miekg/dns finds; and what it returns packs again (packMessages) into
// messages that it and miekg/dns both decode to the same records.
func FuzzParseMessage(f *testing.F) {
	for _, s := range seedMessages(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMessage(b)
		if err != nil {
			return
		}
		if whole := new(dns.Msg); whole.Unpack(b) == nil {
			short := 0
			for i, sec := range [][]dns.RR{whole.Answer, whole.Ns, whole.Extra} {
				var want []record
				for _, rr := range sec {
					if cutShort(rr) {
						short++
						continue
					}
					if r, ok := fromRR(rr); ok {
						want = append(want, r)
					}
				}
				got := [][]record{m.Answers, m.Authority, m.Additional}[i]
				if len(got) != len(want) {
					t.Fatalf("section %d: %d records, miekg/dns finds %d", i, len(got), len(want))
				}
				for j := range got {
					if !got[j].sameData(&want[j]) || got[j].TTL != want[j].TTL || got[j].Flush != want[j].Flush {
						t.Fatalf("section %d: %+v, miekg/dns finds %+v", i, got[j], want[j])
					}
				}
			}
			if m.Bad != short {
				t.Fatalf("skipped %d records of a message miekg/dns parses, %d of them SRV records cut short", m.Bad, short)
			}
		}
		all := append(append(append([]record(nil), m.Answers...), m.Authority...), m.Additional...)
		msgs, dropped := packMessages(responseHdr, nil, all, nil, MaxMessage, false)
		if dropped > 0 {
			return // names too long once escaped, and the like
		}
		var back []record
		for _, b := range msgs {
			again, err := parseMessage(b)
			if err != nil {
				t.Fatalf("repacked message does not parse: %v", err)
			}
			back = append(back, again.Answers...)
			var whole dns.Msg
			if err := whole.Unpack(b); err != nil {
				t.Fatalf("miekg/dns refuses the repacked message: %v", err)
			}
			if len(whole.Answer) != len(again.Answers) {
				t.Fatalf("miekg/dns reads %d records of %d repacked", len(whole.Answer), len(again.Answers))
			}
			for i, rr := range whole.Answer {
				r, ok := fromRR(rr)
				if !ok || !r.sameData(&again.Answers[i]) || r.TTL != again.Answers[i].TTL || r.Flush != again.Answers[i].Flush {
					t.Fatalf("miekg/dns reads %v where we read %+v", rr, again.Answers[i])
				}
			}
		}
		if len(back) != len(all) {
			t.Fatalf("%d records became %d", len(all), len(back))
		}
		for i := range all {
			if !all[i].sameData(&back[i]) || all[i].TTL != back[i].TTL || all[i].Flush != back[i].Flush {
				t.Fatalf("record %+v became %+v", all[i], back[i])
			}
		}
	})
}

// cutShort reports an SRV record whose data ends before its target (1 to
// 6 bytes): miekg/dns keeps the fields it has, we count it bad.
func cutShort(rr dns.RR) bool {
	h := rr.Header()
	return h.Rrtype == dns.TypeSRV && h.Rdlength > 0 && h.Rdlength < 7
}

// FuzzUnpackName: a name decodes as github.com/miekg/dns decodes it, to
// the same presentation format and end, or fails where it fails.
func FuzzUnpackName(f *testing.F) {
	for _, s := range seedMessages(f) {
		f.Add(s, uint16(12))
	}
	f.Add([]byte("\x03a.b\x05local\x00\xc0\x00"), uint16(9))
	f.Fuzz(func(t *testing.T, b []byte, off uint16) {
		if int(off) > len(b) {
			return
		}
		name, next, err := unpackName(b, int(off))
		want, wantNext, wantErr := dns.UnpackDomainName(b, int(off))
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("at %d of %x: error %v, miekg/dns %v", off, b, err, wantErr)
		}
		if err == nil && (name != want || next != wantNext) {
			t.Fatalf("at %d of %x: %q ending at %d, miekg/dns %q at %d", off, b, name, next, want, wantNext)
		}
	})
}

// FuzzParseRaw: the opaque framing never panics, and what it accepts it
// frames back with the same counts, name, type and payload (the ID, the
// flags other than QR, opcode and rcode, the cache-flush bit and the TTL
// are not checked).
func FuzzParseRaw(f *testing.F) {
	for _, s := range seedMessages(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := parseRaw(b)
		if !ok {
			return
		}
		again := appendRaw(nil, p)
		typeEnd := rawOverhead - 8
		if len(again) != len(b) || !bytes.Equal(again[4:typeEnd], b[4:typeEnd]) || !bytes.Equal(again[rawOverhead:], b[rawOverhead:]) {
			t.Fatalf("raw message %x reframes as %x", b, again)
		}
	})
}

// FuzzCodec: Decode never panics on any bytes, and what decodes
// re-encodes to the same message.
func FuzzCodec(f *testing.F) {
	for _, m := range codectest.Messages() {
		for _, foreign := range []bool{false, true} {
			if b, err := (Codec{}).encode(nil, &m, foreign); err == nil {
				f.Add(b)
			}
		}
	}
	for _, b := range codectest.Garbage() {
		f.Add(b)
	}
	f.Add([]byte("pM\x01\x00\x01"))
	f.Add([]byte("pM\x01\x00\x01\x01g\x01i\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		codectest.Check(t, Codec{}, b)
	})
}

// FuzzTXT: TXT strings from the network always give metadata a pipe
// message can carry, and what buildTXT writes reads back the same.
func FuzzTXT(f *testing.F) {
	f.Add("txtvers=1\x00id=a\x00g=test\x00health=tcp://h:1\x00m.role=db", "role", "db")
	f.Add("path=/x\x00k=v\xc3\xa9\x00flag\x00=x\x00\xff=1", "k é", "v|w")
	f.Fuzz(func(t *testing.T, joined, k, v string) {
		p := parseTXT(strings.Split(joined, "\x00"))
		for _, pir := range []bool{true, false} {
			for key, val := range p.meta(pir) {
				if key == "" || !utf8.ValidString(key) || !utf8.ValidString(val) {
					t.Fatalf("metadata %q=%q cannot be encoded", key, val)
				}
			}
		}
		if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return
		}
		m := &codec.Message{ID: "i", Group: "g", Health: "tcp://h:1", Comms: "tcp://h:1", Meta: map[string]string{k: v}}
		txt, dropped, err := buildTXT(m)
		if err != nil {
			t.Fatal(err)
		}
		got := parseTXT(txt).meta(true)
		if len(dropped) == 0 && got[k] != v {
			t.Fatalf("metadata %q=%q read back as %v", k, v, got)
		}
	})
}

// FuzzLabels: unescaping never panics, and escaping round-trips.
func FuzzLabels(f *testing.F) {
	f.Add(`My\ Printer\ \(2\)._ipp._tcp.local.`)
	f.Add(`caf\195\169.local.`)
	f.Add(`bad\`)
	f.Fuzz(func(t *testing.T, s string) {
		_, _, _ = firstLabel(s)
		_, _ = unescapeString(s)
		l, _, err := firstLabel(escapeLabel(s) + ".local.")
		if err != nil || l != s {
			t.Fatalf("label %q round-trips as %q, %v", s, l, err)
		}
		if u, err := unescapeString(escapeString(s)); err != nil || u != s {
			t.Fatalf("string %q round-trips as %q, %v", s, u, err)
		}
	})
}

// FuzzReceive feeds any bytes to a Conn's engine as a message from the
// mDNS port or from elsewhere, while it publishes a member: it never
// panics, and every datagram it hands Receive is a pir message of its
// group that the pipe codec decodes.
func FuzzReceive(f *testing.F) {
	for _, s := range seedMessages(f) {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, b []byte, mdnsPort bool) {
		for _, svc := range []string{"", "_http._tcp"} {
			c := bareConn(t, Config{Service: svc})
			now := time.Now()
			if err := c.e.publish(member("self", 4000), nil, now); err != nil {
				t.Fatal(err)
			}
			c.e.pub.state = published
			m, err := parseMessage(b)
			if err != nil {
				return
			}
			src := netip.MustParseAddrPort("198.18.0.9:5353")
			if !mdnsPort {
				src = netip.MustParseAddrPort("198.18.0.9:40000")
			}
			c.e.handle(inbound{msg: m, src: src, ifIndex: 1, at: now})
			c.e.due(now.Add(time.Second))
			c.e.heartbeat(now.Add(2 * time.Second))
			c.e.due(now.Add(time.Hour))
			for _, d := range drain(c) {
				var msg codec.Message
				if err := (Codec{}).Decode(d.b, &msg); err != nil {
					t.Fatalf("synthesized %q does not decode: %v", d.b, err)
				}
				if msg.Group != "test" || msg.ID == "self" {
					t.Fatalf("synthesized %+v", msg)
				}
			}
		}
	})
}
