package agent

import (
	"fmt"
	"net"
	"runtime"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// benchDNS answers one question about a 100-member group through the
// handler, packing each reply as the server would, over UDP (truncated to
// 512 bytes) and TCP (complete).
func benchDNS(b *testing.B, name string, qtype uint16) {
	a, err := New(Config{})
	require.NoError(b, err)
	defer a.Close()
	feed(b, a, "big", bigGroup(100)...)
	req := new(dns.Msg)
	req.SetQuestion(name, qtype)
	h := a.DNS()
	for _, local := range []net.Addr{&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}} {
		b.Run(local.Network(), func(b *testing.B) {
			w := &memWriter{local: local}
			b.ReportAllocs()
			for b.Loop() {
				w.out, w.msgs = w.out[:0], w.msgs[:0]
				h.ServeDNS(w, req)
			}
			require.NoError(b, w.err)
			require.Len(b, w.out, 1)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
			b.ReportMetric(float64(len(w.out[0])), "bytes/reply")
		})
	}
}

func BenchmarkDNSSRV(b *testing.B) { benchDNS(b, "big.pir.", dns.TypeSRV) }
func BenchmarkDNSA(b *testing.B)   { benchDNS(b, "big.pir.", dns.TypeA) }

// BenchmarkAgentHeap measures the heap an agent holds for 10 groups of
// 100 members (each with two metadata entries), after 1000 join events
// (kept in the event rings) and a DNS query per group (its DNS view
// built).
func BenchmarkAgentHeap(b *testing.B) {
	const groups, members = 10, 100
	var total float64
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		a, err := New(Config{})
		require.NoError(b, err)
		for g := range groups {
			ms := bigGroup(members)
			for i := range ms {
				ms[i].ID = fmt.Sprintf("g%d-%s-%s", g, ms[i].ID, "0123456789abcdef0123") // UUID-sized
				ms[i].Meta = map[string]string{"zone": "eu-west-1b", "version": "1.4.2"}
			}
			feed(b, a, fmt.Sprintf("group%d", g), ms...)
			w := &memWriter{local: &net.UDPAddr{}}
			req := new(dns.Msg)
			req.SetQuestion(fmt.Sprintf("group%d.pir.", g), dns.TypeSRV)
			a.DNS().ServeDNS(w, req)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		total += float64(after.HeapAlloc) - float64(before.HeapAlloc)
		runtime.KeepAlive(a)
		a.Close()
	}
	b.ReportMetric(total/float64(b.N)/(groups*members), "bytes/member")
	b.ReportMetric(0, "ns/op")
}
