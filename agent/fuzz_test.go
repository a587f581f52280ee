package agent

import (
	"net"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/score"
)

// memWriter is an in-memory dns.ResponseWriter: it packs what the handler
// writes, as the server would.
type memWriter struct {
	local net.Addr
	out   [][]byte
	msgs  []*dns.Msg
	err   error
}

func (w *memWriter) LocalAddr() net.Addr { return w.local }
func (w *memWriter) RemoteAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}
}
func (w *memWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		w.err = err
		return err
	}
	w.out = append(w.out, b)
	w.msgs = append(w.msgs, m)
	return nil
}
func (w *memWriter) Write(b []byte) (int, error) { w.out = append(w.out, b); return len(b), nil }
func (w *memWriter) Close() error                { return nil }
func (w *memWriter) TsigStatus() error           { return nil }
func (w *memWriter) TsigTimersOnly(bool)         {}
func (w *memWriter) Hijack()                     {}

func seedQuery(name string, qtype uint16, edns uint16) []byte {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, true)
	}
	b, _ := m.Pack()
	return b
}

// FuzzDNSHandler feeds the handler whatever unpacks as a DNS message, over
// UDP and TCP: it never panics, writes at most one reply, every reply
// packs, and a UDP reply fits 512 bytes unless the query's EDNS0 allowed
// more.
func FuzzDNSHandler(f *testing.F) {
	for _, s := range [][]byte{
		seedQuery("web.pir.", dns.TypeSRV, 0),
		seedQuery("big.pir.", dns.TypeSRV, 0),
		seedQuery("big.pir.", dns.TypeA, 1232),
		seedQuery("m1.web.pir.", dns.TypeTXT, 0),
		seedQuery("WEB.pir.", dns.TypeAAAA, 0),
		seedQuery("nope.pir.", dns.TypeA, 0),
		seedQuery("pir.", dns.TypeSOA, 0),
		seedQuery("x.example.", dns.TypeA, 0),
		seedQuery(`a\.b.web.pir.`, dns.TypeA, 0),
		seedQuery(`\000.web.pir.`, dns.TypeANY, 100),
		{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0},
		{},
	} {
		f.Add(s)
	}
	a, err := New(Config{TTL: 5})
	require.NoError(f, err)
	f.Cleanup(func() { a.Close() })
	webGroup(f, a)
	feed(f, a, "big", bigGroup(100)...)
	feed(f, a, "weird", fake("W\x00<x>", "198.18.9.9", 1, score.Healthy, map[string]string{"k\"\\": string(make([]byte, 300))}))

	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if req.Unpack(b) != nil {
			return
		}
		for _, local := range []net.Addr{&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}} {
			w := &memWriter{local: local}
			a.DNS().ServeDNS(w, req)
			require.NoError(t, w.err, "the reply packs")
			require.LessOrEqual(t, len(w.out), 1, "at most one reply")
			if len(w.out) == 0 {
				require.True(t, req.Response, "only a response gets no reply")
				continue
			}
			require.Equal(t, req.Id, w.msgs[0].Id)
			if _, udp := local.(*net.UDPAddr); udp {
				limit := 512
				if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > limit {
					limit = int(opt.UDPSize())
				}
				require.LessOrEqual(t, len(w.out[0]), limit, "a UDP reply fits")
			}
		}
	})
}
