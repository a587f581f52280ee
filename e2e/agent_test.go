//go:build linux

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/nslan"
	"github.com/pirlan/pir/internal/nslan/pircli"
)

// TestAgent runs pir-agent on a lab host beside a three-member group and
// asks it, as a program in any language would, over DNS and HTTP: the
// members' SRV, A, AAAA and TXT records, NXDOMAIN for what is not there,
// the members as JSON, a blocking query and the event stream, both woken
// by a member killed with SIGKILL. The agent also announces a local
// service (-service) whose check the test turns off and on: the service
// is a healthy member only while its check passes, and it says goodbye
// when the agent is interrupted.
//
// The agent listens on its defaults, 127.0.0.1:8600 and 127.0.0.1:8500, in
// its host's namespace; the test's DNS and HTTP clients open their sockets
// in that namespace (nslan.Host.Do), so that nothing leaves it.
func TestAgent(t *testing.T) {
	l := newLab(t, nslan.Config{Hosts: 3})
	hosts := l.Hosts()
	h0 := hosts[0]

	// Members: h0 and h1 with IPv4 comms URIs, h2 with an IPv6 one (for
	// AAAA); each with metadata (for TXT).
	var members []*pircli.Peer
	for _, h := range hosts {
		comms := "tcp://" + net.JoinHostPort(h.IPv4.String(), "8080")
		if h.Index == 2 {
			comms = "tcp://" + net.JoinHostPort(h.IPv6.String(), "8080")
		}
		members = append(members, join(t, h, "-group", "web", "-comms", comms, "-meta", "zone="+h.Name, "-meta", "rack=r1"))
	}
	// A watcher on another host sees the agent's service as the LAN does.
	w := watch(t, hosts[1], "-group", "api")

	healthyFile := filepath.Join(t.TempDir(), "api-healthy")
	ag := startAgent(t, h0, "-iface", "eth0", "-group", "web",
		"-service", "api=tcp://127.0.0.1:8080", "-check", "api=exec:test -e "+healthyFile, "-check-interval", "50ms")
	// Every wait below is bounded by this; the test takes a few seconds
	// for each step that waits for probes.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, line, err := ag.WaitLine(ctx, 0, func(l nslan.Line) bool { return strings.Contains(l.Text, "api: announcing service") })
	require.NoError(t, err)
	svcID := strings.TrimSuffix(strings.Fields(strings.SplitN(line.Text, " as ", 2)[1])[0], ",")
	_, _, err = ag.WaitLine(ctx, 0, func(l nslan.Line) bool { return strings.Contains(l.Text, "agent serving groups") })
	require.NoError(t, err)

	c := newAgentClient(t, h0)

	// The members, as JSON, once all three have joined: each blocking
	// query returns when the group changes.
	web := c.waitMembers(ctx, "web", "", func(ms []agentMember) bool { return len(ms) == 3 })
	for i, m := range web {
		h := hosts[i]
		assert.Equal(t, peerID(h), m.ID)
		assert.Equal(t, "healthy", m.Verdict, "%+v", m)
		assert.Equal(t, map[string]string{"zone": h.Name, "rack": "r1"}, m.Meta)
		assert.Contains(t, m.CommsURI, ":8080")
		assert.False(t, m.Joined.IsZero() || m.LastHeard.IsZero(), "%+v", m)
	}
	groups := c.getJSON(ctx, "/v1/groups", nil)
	var gs []struct {
		Name    string `json:"name"`
		Members int    `json:"members"`
		Healthy int    `json:"healthy"`
	}
	require.NoError(t, json.Unmarshal(groups, &gs))
	require.Len(t, gs, 2, "%s", groups)
	assert.Equal(t, "api", gs[0].Name)
	assert.Equal(t, "web", gs[1].Name)
	assert.Equal(t, 3, gs[1].Healthy, "%s", groups)

	// DNS: SRV with glue, A and AAAA, TXT, NXDOMAIN, over UDP and TCP.
	for _, network := range []string{"udp", "tcp"} {
		r := c.query(ctx, network, "web.pir.", dns.TypeSRV)
		require.Equal(t, dns.RcodeSuccess, r.Rcode)
		var targets []string
		for _, rr := range r.Answer {
			srv, ok := rr.(*dns.SRV)
			require.True(t, ok, "%v", rr)
			assert.Equal(t, uint16(8080), srv.Port)
			targets = append(targets, srv.Target)
		}
		slices.Sort(targets)
		assert.Equal(t, []string{"pir-h0.web.pir.", "pir-h1.web.pir.", "pir-h2.web.pir."}, targets, "%v", r)
		glue := map[string]netip.Addr{}
		for _, rr := range r.Extra {
			switch rr := rr.(type) {
			case *dns.A:
				glue[rr.Hdr.Name] = addrOf(rr.A)
			case *dns.AAAA:
				glue[rr.Hdr.Name] = addrOf(rr.AAAA)
			}
		}
		assert.Equal(t, map[string]netip.Addr{
			"pir-h0.web.pir.": hosts[0].IPv4, "pir-h1.web.pir.": hosts[1].IPv4, "pir-h2.web.pir.": hosts[2].IPv6,
		}, glue, "%v", r)
	}
	assert.ElementsMatch(t, []netip.Addr{hosts[0].IPv4, hosts[1].IPv4}, answerAddrs(c.query(ctx, "udp", "web.pir.", dns.TypeA)))
	assert.ElementsMatch(t, []netip.Addr{hosts[2].IPv6}, answerAddrs(c.query(ctx, "udp", "WEB.Pir.", dns.TypeAAAA)), "names are case-insensitive")
	assert.Equal(t, []netip.Addr{hosts[1].IPv4}, answerAddrs(c.query(ctx, "udp", "pir-h1.web.pir.", dns.TypeA)))
	txt := c.query(ctx, "udp", "pir-h1.web.pir.", dns.TypeTXT)
	var kv []string
	for _, rr := range txt.Answer {
		kv = append(kv, rr.(*dns.TXT).Txt...)
	}
	slices.Sort(kv)
	assert.Equal(t, []string{"rack=r1", "zone=h1"}, kv, "%v", txt)
	for _, name := range []string{"nosuch.pir.", "nosuch.web.pir."} {
		r := c.query(ctx, "udp", name, dns.TypeA)
		assert.Equal(t, dns.RcodeNameError, r.Rcode, "%s: %v", name, r)
		require.Len(t, r.Ns, 1, "%s: an SOA in authority: %v", name, r)
		assert.IsType(t, &dns.SOA{}, r.Ns[0])
	}

	// The service: its check fails (no file), so it is announced but
	// answers probes as unhealthy. The watcher on h1, which lists members
	// before their first probe, sees it fail; the agent never lists it.
	_, err = w.WaitEvent(ctx, 0, func(e pircli.Event) bool {
		return e.ID == svcID && (e.Verdict == "suspect" || e.Event == pircli.Left)
	})
	require.NoError(t, err, "the watcher on h1 never saw the failing service fail")
	assert.Empty(t, c.members(ctx, "api", "healthy=1"))
	r := c.query(ctx, "udp", "api.pir.", dns.TypeSRV)
	assert.Equal(t, dns.RcodeSuccess, r.Rcode, "a known group without a healthy member: %v", r)
	assert.Empty(t, r.Answer)

	// The check passes: the service joins, healthy, at h0's address.
	require.NoError(t, os.WriteFile(healthyFile, nil, 0o600))
	api := c.waitMembers(ctx, "api", "healthy=1", func(ms []agentMember) bool { return len(ms) == 1 })
	assert.Equal(t, svcID, api[0].ID)
	comms, err := url.Parse(api[0].CommsURI)
	require.NoError(t, err)
	assert.Equal(t, "8080", comms.Port())
	a, err := netip.ParseAddr(comms.Hostname())
	require.NoError(t, err, "%s", api[0].CommsURI)
	assert.True(t, a.WithZone("") == h0.IPv4 || a.WithZone("") == h0.IPv6 || a.IsLinkLocalUnicast(),
		"the service on loopback is announced at h0's own address, not %s", api[0].CommsURI)
	r = c.query(ctx, "tcp", "api.pir.", dns.TypeSRV)
	require.Len(t, r.Answer, 1, "%v", r)
	assert.Equal(t, strings.ToLower(svcID)+".api.pir.", r.Answer[0].(*dns.SRV).Target)

	// The check fails again: the service is no longer a healthy member.
	require.NoError(t, os.Remove(healthyFile))
	c.waitMembers(ctx, "api", "healthy=1", func(ms []agentMember) bool { return len(ms) == 0 })
	require.NoError(t, os.WriteFile(healthyFile, nil, 0o600))
	c.waitMembers(ctx, "api", "healthy=1", func(ms []agentMember) bool { return len(ms) == 1 })

	// A member killed with SIGKILL: the event stream and a blocking
	// query, both open before the kill, see it leave.
	stream := c.events(ctx, "web")
	for range 3 {
		e := stream.next(t)
		require.Equal(t, "joined", e.Event, "the stream starts with the members: %+v", e)
		assert.True(t, e.Snapshot, "%+v", e)
	}
	_, index := c.membersIndex(ctx, "web", "")
	type answer struct {
		index uint64
		err   error
		at    time.Time
	}
	blocked := make(chan answer, 1)
	go func() {
		i, err := c.blockingQuery(ctx, "web", index)
		blocked <- answer{i, err, time.Now()}
	}()
	killed := members[2]
	fromAgent := ag.Len()
	require.NoError(t, killed.Kill())
	for {
		e := stream.next(t)
		if e.Event == "left" {
			assert.Equal(t, killed.ID, e.ID, "%+v", e)
			assert.Equal(t, "web", e.Group, "%+v", e)
			assert.Contains(t, []string{"failed", "expired"}, e.Reason, "%+v", e)
			break
		}
		assert.Equal(t, killed.ID, e.ID, "only the killed member changes: %+v", e)
	}
	select {
	case a := <-blocked: // woken by the first change: a health event or the leave
		require.NoError(t, a.err)
		assert.Greater(t, a.index, index)
		// How soon after the agent printed the change (the lab stamps its
		// lines as it reads them) the query returned: a figure, not a test.
		_, changed, err := ag.WaitLine(ctx, fromAgent, func(l nslan.Line) bool {
			return strings.Contains(l.Text, "web: ") && strings.Contains(l.Text, killed.ID)
		})
		require.NoError(t, err)
		t.Logf("the blocking query returned %v after the agent printed %q", a.at.Sub(changed.At).Round(time.Microsecond), changed.Text)
	case <-ctx.Done():
		t.Fatal("the blocking query was not woken by the member's failure")
	}
	c.waitMembers(ctx, "web", "", func(ms []agentMember) bool { return len(ms) == 2 })
	r = c.query(ctx, "udp", killed.ID+".web.pir.", dns.TypeA)
	assert.Equal(t, dns.RcodeNameError, r.Rcode, "%v", r)
	stream.close()

	// Interrupted, the agent leaves with a goodbye for its service and
	// exits 0.
	from := w.Len()
	require.NoError(t, ag.Interrupt())
	require.NoError(t, ag.Wait(ctx), "pir-agent exits cleanly on SIGINT; stderr:\n%s", ag.Stderr())
	assert.NoError(t, ag.CheckStderr())
	_, err = w.WaitEvent(ctx, from, pircli.Is(pircli.Left, svcID, pircli.Goodbye))
	require.NoError(t, err, "the watcher on h1 saw the service say goodbye")
}

// startAgent starts "pir-agent args..." on h; the test interrupts it at its
// end if it still runs.
func startAgent(t *testing.T, h *nslan.Host, args ...string) *pircli.Peer {
	t.Helper()
	cmd := h.Command(context.Background(), agentPath, args...)
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	p, err := h.StartCommand(cmd)
	require.NoError(t, err)
	peer := &pircli.Peer{Proc: p}
	t.Cleanup(func() {
		select {
		case <-p.Done():
		default:
			_ = p.Interrupt()
			ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
			defer cancel()
			assert.NoError(t, p.Wait(ctx), "pir-agent exits cleanly; stderr:\n%s", p.Stderr())
		}
		assert.NoError(t, peer.CheckStderr())
	})
	return peer
}

// dialIn dials addr from inside h's network namespace.
func dialIn(ctx context.Context, h *nslan.Host, network, addr string) (net.Conn, error) {
	var c net.Conn
	var dialErr error
	if err := h.Do(func() { c, dialErr = (&net.Dialer{}).DialContext(ctx, network, addr) }); err != nil {
		return nil, err
	}
	return c, dialErr
}

// agentClient asks the agent on one lab host, at its default addresses.
type agentClient struct {
	t    *testing.T
	h    *nslan.Host
	http *http.Client
}

const (
	agentDNS  = "127.0.0.1:8600"
	agentHTTP = "http://127.0.0.1:8500"
)

func newAgentClient(t *testing.T, h *nslan.Host) *agentClient {
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, h, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &agentClient{t: t, h: h, http: &http.Client{Transport: tr}}
}

// query asks the agent's DNS server one question over network (udp or
// tcp).
func (c *agentClient) query(ctx context.Context, network, name string, qtype uint16) *dns.Msg {
	c.t.Helper()
	conn, err := dialIn(ctx, c.h, network, agentDNS)
	require.NoError(c.t, err)
	defer conn.Close()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	cl := &dns.Client{Net: network, Timeout: 10 * time.Second}
	r, _, err := cl.ExchangeWithConn(m, &dns.Conn{Conn: conn})
	require.NoError(c.t, err, "%s %s over %s", name, dns.TypeToString[qtype], network)
	return r
}

// get GETs path and returns the response, its status checked.
func (c *agentClient) get(ctx context.Context, path string) *http.Response {
	c.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, agentHTTP+path, nil)
	require.NoError(c.t, err)
	resp, err := c.http.Do(req)
	require.NoError(c.t, err, "GET %s", path)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(c.t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, b)
	}
	return resp
}

// getJSON GETs path and returns its body, a JSON document; header, if not
// nil, gets the response's headers.
func (c *agentClient) getJSON(ctx context.Context, path string, header *http.Header) []byte {
	c.t.Helper()
	resp := c.get(ctx, path)
	defer resp.Body.Close()
	assert.Contains(c.t, resp.Header.Get("Content-Type"), "application/json")
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	if header != nil {
		*header = resp.Header
	}
	return b
}

// agentMember is one member in the agent's JSON.
type agentMember struct {
	ID        string            `json:"id"`
	HealthURI string            `json:"health_uri"`
	CommsURI  string            `json:"comms_uri"`
	Addr      string            `json:"addr"`
	Health    float64           `json:"health"`
	Verdict   string            `json:"verdict"`
	Meta      map[string]string `json:"meta"`
	Joined    time.Time         `json:"joined"`
	LastHeard time.Time         `json:"last_heard"`
}

// membersIndex GETs a group's members with the query given, and returns
// them with the group's index (X-Pir-Index).
func (c *agentClient) membersIndex(ctx context.Context, group, query string) ([]agentMember, uint64) {
	c.t.Helper()
	var h http.Header
	b := c.getJSON(ctx, "/v1/groups/"+group+"/members?"+query, &h)
	var ms []agentMember
	require.NoError(c.t, json.Unmarshal(b, &ms), "%s", b)
	index, err := strconv.ParseUint(h.Get("X-Pir-Index"), 10, 64)
	require.NoError(c.t, err, "X-Pir-Index %q", h.Get("X-Pir-Index"))
	return ms, index
}

// members GETs a group's members with the query given.
func (c *agentClient) members(ctx context.Context, group, query string) []agentMember {
	c.t.Helper()
	ms, _ := c.membersIndex(ctx, group, query)
	return ms
}

// blockingQuery GETs a group's members with ?index=index&wait=5m, and
// returns the index the answer carries. It may run on any goroutine.
func (c *agentClient) blockingQuery(ctx context.Context, group string, index uint64) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/groups/%s/members?index=%d&wait=5m", agentHTTP, group, index), nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %s", resp.Status)
	}
	return strconv.ParseUint(resp.Header.Get("X-Pir-Index"), 10, 64)
}

// waitMembers returns a group's members (with the query given) once ok
// accepts them, each blocking query returning when the group changes.
func (c *agentClient) waitMembers(ctx context.Context, group, query string, ok func([]agentMember) bool) []agentMember {
	c.t.Helper()
	if query != "" {
		query += "&"
	}
	ms, index := c.membersIndex(ctx, group, query)
	for !ok(ms) {
		require.NoError(c.t, ctx.Err(), "group %s never had the members wanted; last: %+v", group, ms)
		ms, index = c.membersIndex(ctx, group, query+"wait=1m&index="+strconv.FormatUint(index, 10))
	}
	return ms
}

// agentEvent is one Server-Sent Event's data.
type agentEvent struct {
	Event    string `json:"event"`
	ID       string `json:"id"`
	Group    string `json:"group"`
	Reason   string `json:"reason"`
	Verdict  string `json:"verdict"`
	Snapshot bool   `json:"snapshot"`
}

// eventStream reads a group's Server-Sent Events.
type eventStream struct {
	resp   *http.Response
	events chan agentEvent
	errc   chan error
	done   chan struct{} // closed by close
	once   sync.Once
}

func (c *agentClient) events(ctx context.Context, group string) *eventStream {
	c.t.Helper()
	resp := c.get(ctx, "/v1/groups/"+group+"/events")
	require.Equal(c.t, "text/event-stream", strings.Split(resp.Header.Get("Content-Type"), ";")[0])
	s := &eventStream{resp: resp, events: make(chan agentEvent, 64), errc: make(chan error, 1), done: make(chan struct{})}
	c.t.Cleanup(s.close)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		var typ, id string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				var e agentEvent
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e); err != nil {
					s.errc <- fmt.Errorf("event %s: %w: %s", id, err, line)
					return
				}
				if e.Event != typ {
					s.errc <- fmt.Errorf("event %s: type %q, data says %q", id, typ, e.Event)
					return
				}
				select {
				case s.events <- e:
				case <-s.done:
					return
				}
			}
		}
		s.errc <- errors.Join(io.EOF, sc.Err())
	}()
	return s
}

// next returns the next event, waiting for it for at most removeTimeout.
func (s *eventStream) next(t *testing.T) agentEvent {
	t.Helper()
	select {
	case e := <-s.events:
		return e
	case err := <-s.errc:
		t.Fatalf("event stream: %v", err)
	case <-time.After(removeTimeout):
		t.Fatal("no event within the timeout")
	}
	return agentEvent{}
}

func (s *eventStream) close() {
	s.once.Do(func() {
		close(s.done)
		s.resp.Body.Close()
	})
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

func answerAddrs(r *dns.Msg) []netip.Addr {
	var as []netip.Addr
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			as = append(as, addrOf(rr.A))
		case *dns.AAAA:
			as = append(as, addrOf(rr.AAAA))
		}
	}
	return as
}
