package mdns_test

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/auth"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport/mdns"
)

const waitFor = 10 * time.Second

// udpPort returns a UDP port free in both families, for a private mDNS
// network of the test's own.
func udpPort(t *testing.T) uint16 {
	t.Helper()
	for range 100 {
		c4, err := net.ListenPacket("udp4", ":0")
		require.NoError(t, err)
		port := c4.LocalAddr().(*net.UDPAddr).Port
		c6, err := net.ListenPacket("udp6", net.JoinHostPort("::", strconv.Itoa(port)))
		c4.Close()
		if err == nil {
			c6.Close()
			return uint16(port)
		}
	}
	t.Fatal("no free UDP port")
	return 0
}

// member is a Group over an mdns Conn on lo, with a TCP health server, and
// the events it reports.
type member struct {
	*discovery.Group
	events chan discovery.Event
}

func join(t *testing.T, cfg discovery.Config, mc mdns.Config, healthAddr string) *member {
	t.Helper()
	mc.Interfaces = []string{netlab.Loopback}
	if mc.Group == "" {
		mc.Group = cfg.Name
	}
	tr, err := mdns.New(mc)
	require.NoError(t, err)
	cfg.Transport = tr
	if !cfg.Passive {
		hs := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
		require.NoError(t, hs.Start(healthAddr))
		t.Cleanup(func() { hs.Close() })
		cfg.Self.HealthURI = hs.URI()
	}
	g, err := discovery.Join(context.Background(), cfg)
	require.NoError(t, err)
	m := &member{Group: g, events: make(chan discovery.Event, 256)}
	g.AddListener(func(e discovery.Event) bool {
		select {
		case m.events <- e:
		default:
		}
		return true
	})
	t.Cleanup(func() { g.Close() })
	return m
}

func (m *member) wait(t *testing.T, what string, match func(discovery.Event) bool) discovery.Event {
	t.Helper()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	for {
		select {
		case e := <-m.events:
			if match(e) {
				return e
			}
		case <-timer.C:
			t.Fatalf("no %s within %v", what, waitFor)
			return discovery.Event{}
		}
	}
}

func joined(id string) func(discovery.Event) bool {
	return func(e discovery.Event) bool { return e.Type == discovery.Joined && e.Member.ID == id }
}

func leftBy(id string, why discovery.Reason) func(discovery.Event) bool {
	return func(e discovery.Event) bool {
		return e.Type == discovery.Left && e.Member.ID == id && e.Reason == why
	}
}

func hostOf(t *testing.T, u *url.URL) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(u.Hostname())
	require.NoError(t, err, "%s", u)
	return a
}

// webMember is the Config of member id of group "web", its role its ID.
func webMember(id string) discovery.Config {
	return discovery.Config{Name: "web", Self: discovery.Peer{ID: id, Meta: map[string]string{"role": id}}}
}

// Two Groups over mDNS find each other, probe each other healthy, and a
// Leave is a goodbye to the other.
func TestMDNSGroupsMeetAndLeave(t *testing.T) {
	netlab.Require(t)
	t.Cleanup(func() { goleak.VerifyNone(t) })
	port := udpPort(t)
	a := join(t, webMember("a"), mdns.Config{Port: port, Network: "udp4"}, "198.18.255.1:0")
	b := join(t, webMember("b"), mdns.Config{Port: port, Network: "udp4"}, "198.18.255.1:0")

	e := a.wait(t, "b joined", joined("b"))
	assert.Equal(t, map[string]string{"role": "b"}, e.Member.Meta)
	assert.Equal(t, 1.0, e.Member.Health)
	e = b.wait(t, "a joined", joined("a"))
	assert.Equal(t, "tcp", e.Member.HealthURI.Scheme)
	assert.Equal(t, port, e.Member.Addr.Port(), "heard from the responder's port")

	require.NoError(t, b.Leave(context.Background()))
	a.wait(t, "b left with a goodbye", leftBy("b", discovery.Goodbye))
}

// discovery.Group.Update over mDNS: the Conn announces the new TXT
// record and SRV port (RFC 6762 section 8.4), and the other member emits
// Updated with them.
func TestMDNSGroupUpdate(t *testing.T) {
	netlab.Require(t)
	t.Cleanup(func() { goleak.VerifyNone(t) })
	port := udpPort(t)
	a := join(t, webMember("a"), mdns.Config{Port: port, Network: "udp4"}, "198.18.255.1:0")
	b := join(t, webMember("b"), mdns.Config{Port: port, Network: "udp4"}, "198.18.255.1:0")
	a.wait(t, "b joined", joined("b"))
	b.wait(t, "a joined", joined("a"))

	comms := &url.URL{Scheme: "tcp", Host: "198.18.255.1:8443"}
	require.NoError(t, b.Update(context.Background(), comms, map[string]string{"role": "leader"}))
	e := a.wait(t, "b updated", func(e discovery.Event) bool { return e.Type == discovery.Updated && e.Member.ID == "b" })
	assert.Equal(t, map[string]string{"role": "leader"}, e.Member.Meta)
	assert.Equal(t, "tcp://198.18.255.1:8443", e.Member.CommsURI.String())
	m, ok := a.Member("b")
	require.True(t, ok)
	assert.Equal(t, "leader", m.Meta["role"])
}

// A member whose health server listens on every address (the pir
// command's default) is published with its host name in its URIs, and the
// other member resolves it to an address of lo.
func TestMDNSGroupUnspecifiedHost(t *testing.T) {
	for _, tc := range []struct {
		network, listen string
	}{{"udp4", "0.0.0.0:0"}, {"", "[::]:0"}} {
		t.Run(tc.listen, func(t *testing.T) {
			netlab.RequireIPv6(t)
			t.Cleanup(func() { goleak.VerifyNone(t) })
			port := udpPort(t)
			a := join(t, discovery.Config{Name: "web", Self: discovery.Peer{ID: "a"}}, mdns.Config{Port: port, Network: tc.network}, tc.listen)
			b := join(t, discovery.Config{Name: "web", Self: discovery.Peer{ID: "b"}}, mdns.Config{Port: port, Network: tc.network}, tc.listen)
			e := b.wait(t, "a joined", joined("a"))
			h := hostOf(t, e.Member.HealthURI)
			assert.Contains(t, []netip.Addr{netlab.LoopbackV4, netip.MustParseAddr("127.0.0.1"), netlab.LoopbackV6}, h)
			assert.Equal(t, "healthy", e.Member.Verdict.String())
			a.wait(t, "b joined", joined("b"))
		})
	}
}

// A watcher over a service type finds a service that other software
// announces: it is a member while mDNS advertises it, although nothing
// listens on its port (its mdns:// health URI passes while it is
// advertised: no flap over many probe intervals), the TXT record is its
// metadata, and its goodbye removes it.
func TestMDNSGroupForeignService(t *testing.T) {
	netlab.Require(t)
	t.Cleanup(func() { goleak.VerifyNone(t) })
	port := udpPort(t)
	// A port nothing listens on.
	svc, err := net.Listen("tcp4", "198.18.255.1:0")
	require.NoError(t, err)
	svcPort := uint16(svc.Addr().(*net.TCPAddr).Port)
	require.NoError(t, svc.Close())

	// The default Prober: the Conn's Probers serve mdns://.
	w := join(t, discovery.Config{Name: "web", Passive: true, ProbeInterval: 50 * time.Millisecond},
		mdns.Config{Port: port, Network: "udp4", Service: "_http._tcp"}, "")

	// The foreign responder: it shares the mDNS port, as real ones do (a
	// response from another port would be ignored).
	lc := net.ListenConfig{Control: mdns.SharedPortControl}
	pc, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(netlab.LoopbackV4, port).String())
	require.NoError(t, err)
	defer pc.Close()
	announce := func(ttl uint32) {
		inst := `Web\ Site._http._tcp.local.`
		h := func(name string, typ uint16, flush bool) dns.RR_Header {
			c := uint16(dns.ClassINET)
			if flush {
				c |= 1 << 15
			}
			return dns.RR_Header{Name: name, Rrtype: typ, Class: c, Ttl: ttl}
		}
		m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}, Answer: []dns.RR{
			&dns.PTR{Hdr: h("_http._tcp.local.", dns.TypePTR, false), Ptr: inst},
			&dns.SRV{Hdr: h(inst, dns.TypeSRV, true), Port: svcPort, Target: "web.local."},
			&dns.TXT{Hdr: h(inst, dns.TypeTXT, true), Txt: []string{"path=/index.html"}},
			&dns.A{Hdr: h("web.local.", dns.TypeA, true), A: net.IPv4(198, 18, 255, 1)},
		}}
		b, err := m.Pack()
		require.NoError(t, err)
		_, err = pc.(*net.UDPConn).WriteToUDPAddrPort(b, netip.AddrPortFrom(mdns.GroupV4, port))
		require.NoError(t, err)
	}
	announce(120)
	e := w.wait(t, "the web site joined", func(e discovery.Event) bool { return e.Type == discovery.Joined })
	assert.Equal(t, "mdns://198.18.255.1:"+strconv.Itoa(int(svcPort)), e.Member.HealthURI.String())
	assert.Equal(t, "tcp://198.18.255.1:"+strconv.Itoa(int(svcPort)), e.Member.CommsURI.String())
	assert.Equal(t, map[string]string{"path": "/index.html"}, e.Member.Meta)
	id := e.Member.ID
	assert.Regexp(t, `^Web-Site-[0-9a-f]{8}$`, id)

	// Twenty probes later (a TCP connect would have failed every one), it
	// is still a member and never left.
	for st := w.Stats(); st.ProbesOK < 20; st = w.Stats() {
		require.Zero(t, st.ProbesFailed, "a probe of the advertised service failed")
		select {
		case e := <-w.events:
			require.NotEqual(t, discovery.Left, e.Type, "the service flapped: %+v", e)
		case <-time.After(10 * time.Millisecond):
		}
	}
	require.Len(t, w.Members(), 1)

	announce(0)
	w.wait(t, "the web site left", leftBy(id, discovery.Goodbye))
}

// A Group with another codec (an authenticated envelope) over a Conn fails
// to Join with mdns.ErrNotMessage, rather than silently publishing
// nothing; with Config.Opaque the envelopes travel opaquely and such
// members meet, unpublished.
func TestMDNSGroupOtherCodec(t *testing.T) {
	netlab.Require(t)
	t.Cleanup(func() { goleak.VerifyNone(t) })
	keys, err := auth.NewKeyring(auth.NewKey())
	require.NoError(t, err)
	newCodec := func() codec.Codec {
		c, err := auth.New(mdns.Codec{}, auth.Config{Keys: keys})
		require.NoError(t, err)
		return c
	}
	port := udpPort(t)
	tr, err := mdns.New(mdns.Config{Group: "web", Port: port, Network: "udp4", Interfaces: []string{netlab.Loopback}})
	require.NoError(t, err)
	_, err = discovery.Join(context.Background(), discovery.Config{Name: "web", Transport: tr, Codec: newCodec(), Passive: true})
	require.ErrorIs(t, err, mdns.ErrNotMessage)

	opaque := mdns.Config{Port: port, Network: "udp4", Opaque: true}
	a := join(t, discovery.Config{Name: "web", Codec: newCodec(), Self: discovery.Peer{ID: "a"}}, opaque, "198.18.255.1:0")
	b := join(t, discovery.Config{Name: "web", Codec: newCodec(), Self: discovery.Peer{ID: "b"}}, opaque, "198.18.255.1:0")
	a.wait(t, "b joined", joined("b"))
	b.wait(t, "a joined", joined("a"))
}
