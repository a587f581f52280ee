package mdns

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"testing"

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

// The Conn's probers pass only the health URIs of services it found over
// mDNS: a tcpconnect target that is a found service is probed (a TCP
// connect); the same scheme for any other address, or mdns:// for the
// service, fails with ErrNotFound without a probe.
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
	require.Equal(t, SchemeTCPConnect, health.Scheme)

	probers := w.Probers()
	ctx := context.Background()
	assert.NoError(t, probers[SchemeTCPConnect].Probe(ctx, health), "a found service is probed")
	for _, u := range []string{
		"tcpconnect://" + netip.AddrPortFrom(netlab.LoopbackV4, svcPort+1).String(), // another port
		"tcpconnect://198.18.1.1:" + health.Port(),                                  // another address
	} {
		err := probers[SchemeTCPConnect].Probe(ctx, &url.URL{Scheme: SchemeTCPConnect, Host: strings.TrimPrefix(u, "tcpconnect://")})
		assert.ErrorIs(t, err, ErrNotFound, u)
	}
	adv := &url.URL{Scheme: SchemeAdvertised, Host: health.Host}
	assert.ErrorIs(t, probers[SchemeAdvertised].Probe(ctx, adv), ErrNotFound, "a _tcp service is not mdns://")
	assert.ErrorIs(t, probers[SchemeTCPConnect].Probe(ctx, &url.URL{Scheme: SchemeTCPConnect, Host: "web.local:80"}), healthcheck.ErrInvalidTarget)

	require.NoError(t, w.Close())
	assert.ErrorIs(t, probers[SchemeTCPConnect].Probe(ctx, health), net.ErrClosed)
}
