package agent

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/internal/netlab"
)

// Three real members on the multicast transport over lo, each with a real
// TCP health server; the agent watches the group from m1, so it serves m2
// and m3. Over real DNS and HTTP sockets: SRV with glue, TXT, the event
// stream, a blocking query answered within 100 ms of m3's goodbye reaching
// the agent, and the SRV answer without m3 after.
func TestLANGroup(t *testing.T) {
	netlab.Require(t)
	const p = 9611
	g1, _ := lanMember(t, "m1", p, nil)
	g2, hs2 := lanMember(t, "m2", p, map[string]string{"role": "<script>alert(1)</script>"})
	g3, hs3 := lanMember(t, "m3", p, nil)
	require.Eventually(t, func() bool {
		return len(g1.Members()) == 2 && len(g2.Members()) == 2 && len(g3.Members()) == 2
	}, 10*time.Second, 5*time.Millisecond, "the group forms")

	a := newAgent(t, Config{})
	require.NoError(t, a.Watch(g1))
	require.Error(t, a.Watch(g1), "a name watched twice")
	udp, tcp := dnsServers(t, a)
	s := httpServer(t, a)

	srv := func(network, server string) []string {
		return names(query(t, network, server, "web.pir.", dns.TypeSRV, 0).Answer)
	}
	require.Eventually(t, func() bool { return len(srv("udp", udp)) == 2 }, 10*time.Second, 5*time.Millisecond,
		"both other members healthy in DNS")
	r := query(t, "tcp", tcp, "web.pir.", dns.TypeSRV, 0)
	assert.Equal(t, []string{"m2.web.pir.", "m3.web.pir."}, names(r.Answer))
	lo := netlab.LoopbackV4.String()
	assert.Equal(t, []string{"m2.web.pir. " + lo, "m3.web.pir. " + lo}, names(r.Extra))
	ports := map[string]string{"m2.web.pir.": hs2.URI().Port(), "m3.web.pir.": hs3.URI().Port()}
	for _, rr := range r.Answer {
		srv := rr.(*dns.SRV)
		assert.Equal(t, ports[srv.Target], strconv.Itoa(int(srv.Port)), "the comms URI's port (here the health URI's)")
	}
	r = query(t, "udp", udp, "M2.web.pir.", dns.TypeTXT, 0)
	assert.Equal(t, []string{"role=<script>alert(1)</script>"}, names(r.Answer))
	r = query(t, "udp", udp, "m1.web.pir.", dns.TypeA, 0)
	assert.Equal(t, dns.RcodeNameError, r.Rcode, "the watching member does not list itself")

	// The stream opens with the two members.
	st := openStream(t, t.Context(), s.URL+"/v1/groups/web/events")
	seen := map[string]bool{}
	for range 2 {
		e := st.must()
		assert.Equal(t, "joined", e.event)
		assert.Equal(t, true, e.data["snapshot"])
		seen[e.data["id"].(string)] = true
	}
	assert.Equal(t, map[string]bool{"m2": true, "m3": true}, seen)

	// A blocking query at the current index, then m3 leaves. Health
	// events of m2 may move the index too: then the query is asked again
	// from the new index, until the answer lacks m3. Every answer is timed
	// from the moment its index reached the agent.
	var mu sync.Mutex
	applied := map[string]time.Time{}
	a.mu.Lock()
	a.appliedFor = func(seq uint64) {
		mu.Lock()
		applied[strconv.FormatUint(seq, 10)] = time.Now()
		mu.Unlock()
	}
	a.mu.Unlock()
	index := do(t, "GET", s.URL+"/v1/groups/web/members").header.Get("X-Pir-Index")
	ask := func(index string) chan response {
		got := make(chan response, 1)
		go func() {
			res, err := http.Get(s.URL + "/v1/groups/web/members?index=" + index + "&wait=1m")
			if err != nil {
				got <- response{code: -1, body: err.Error()}
				return
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			got <- response{res.StatusCode, res.Header, string(b)}
		}()
		return got
	}
	got := ask(index)
	blocked(t, a, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, g3.Leave(ctx))
	var ms []struct {
		ID string `json:"id"`
	}
	for {
		res := <-got
		received := time.Now()
		require.Equal(t, http.StatusOK, res.code, res.body)
		next := res.header.Get("X-Pir-Index")
		require.NotEqual(t, index, next, "answered before the wait ended")
		mu.Lock()
		at, ok := applied[next]
		mu.Unlock()
		require.True(t, ok, "index %s came from an event", next)
		took := received.Sub(at)
		t.Logf("figures: blocking query answered %v after the change reached the agent", took)
		assert.Less(t, took, 100*time.Millisecond)
		require.NoError(t, json.Unmarshal([]byte(res.body), &ms))
		if len(ms) == 1 {
			break
		}
		index = next
		got = ask(index)
	}
	assert.Equal(t, "m2", ms[0].ID)

	var e sseEvent
	for e.event != "left" { // health events may come first
		e = st.must()
	}
	assert.Equal(t, "m3", e.data["id"])
	assert.Equal(t, "goodbye", e.data["reason"])
	assert.Equal(t, "web", e.data["group"])

	assert.Equal(t, []string{"m2.web.pir."}, srv("udp", udp))
	r = query(t, "udp", udp, "m3.web.pir.", dns.TypeA, 0)
	assert.Equal(t, dns.RcodeNameError, r.Rcode)
}

// Close removes the agent's listener from the group: its goroutine ends,
// and the group, still running, no longer feeds the agent.
func TestCloseRemovesListener(t *testing.T) {
	netlab.Require(t)
	g, _ := lanMember(t, "m1", 9612, nil)
	before := goleak.IgnoreCurrent()
	a, err := New(Config{})
	require.NoError(t, err)
	require.NoError(t, a.Watch(g))
	require.NoError(t, a.Close())
	goleak.VerifyNone(t, before)
	require.ErrorIs(t, a.Watch(g), ErrClosed)
}

// When the watched Group stops, the agent no longer knows its members:
// each leaves with reason "stopped", live on the stream.
func TestWatchedGroupStops(t *testing.T) {
	netlab.Require(t)
	const p = 9613
	g1, _ := lanMember(t, "m1", p, nil)
	lanMember(t, "m2", p, nil)
	require.Eventually(t, func() bool { return len(g1.Members()) == 1 }, 10*time.Second, 5*time.Millisecond)
	a := newAgent(t, Config{})
	require.NoError(t, a.Watch(g1))
	s := httpServer(t, a)
	st := openStream(t, t.Context(), s.URL+"/v1/groups/web/events")
	e := st.must()
	require.Equal(t, "m2", e.data["id"])
	require.NoError(t, g1.Close())
	for e.event != "left" {
		e = st.must()
	}
	assert.Equal(t, "m2", e.data["id"])
	assert.Equal(t, "stopped", e.data["reason"])
	r := do(t, "GET", s.URL+"/v1/groups/web/members")
	assert.Equal(t, "[]\n", r.body)
}
