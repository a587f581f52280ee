package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/internal/netlab"
)

// agentArgs are the flags every agent in these tests gets: IPv4 on lo,
// its servers on ports of its own.
func agentArgs(port int, args ...string) []string {
	return append([]string{"pir-agent", "-4", "-iface", "lo", "-port", strconv.Itoa(port),
		"-dns", "127.0.0.1:0", "-http", "127.0.0.1:0"}, args...)
}

// pir-agent -service announces a local service whose health is its
// check's: a watcher that lists members only once a probe passes
// (-wait-probe) sees it only after the check passes; one that lists them
// at once sees it fail. Interrupted, the agent says goodbye for it and
// exits 0.
func TestAgentService(t *testing.T) {
	netlab.Require(t)
	const port = 9421
	healthy := filepath.Join(t.TempDir(), "healthy")
	group := []string{"-4", "-iface", "lo", "-port", strconv.Itoa(port), "-group", "api"}
	probed := start(t, append([]string{"watch", "-json", "-wait-probe"}, group...)...)
	heard := start(t, append([]string{"watch", "-json"}, group...)...)
	a := start(t, agentArgs(port, "-service", "api=tcp://127.0.0.1:8080",
		"-check", "api=exec:/bin/sh -c 'test -e \"$0\"' "+healthy, "-check-interval", "20ms")...)
	line := a.stdout.waitFor(t, "api: announcing service tcp://127.0.0.1:8080 as ")
	id := strings.TrimSuffix(strings.Fields(strings.SplitN(line, " as ", 2)[1])[0], ",")
	assert.Contains(t, line, "comms tcp://198.18.255.1:8080 (lo)", "the service on loopback is announced at lo's address")
	assert.Contains(t, line, "check exec /bin/sh")
	a.stdout.waitFor(t, "api: check failed (exit status 1): probes answered unhealthy")
	a.stdout.waitFor(t, `agent serving groups "api" on port 9421: DNS on 127.0.0.1:`)

	// The service's member fails its probes while the check fails.
	heard.stdout.waitFor(t, `"verdict":"suspect"`)
	assert.Zero(t, probed.stdout.count(id), "listed before a probe passed: %q", probed.stdout.lines())

	require.NoError(t, os.WriteFile(healthy, nil, 0o600))
	a.stdout.waitFor(t, "api: check passed: probes answered healthy")
	var joined jsonEvent
	require.NoError(t, json.Unmarshal([]byte(probed.stdout.waitFor(t, `"event":"joined","id":"`+id+`"`)), &joined))
	assert.Equal(t, "tcp://198.18.255.1:8080", joined.Comms)
	assert.Equal(t, "healthy", joined.Verdict)

	assert.Equal(t, 0, a.stop(t), "stderr: %q", a.stderr.lines())
	left := probed.stdout.waitFor(t, `"event":"left","id":"`+id+`"`)
	assert.Contains(t, left, `"reason":"goodbye"`)
	a.stdout.waitFor(t, "agent stopped")
	assert.Empty(t, a.stderr.lines())
}

// Datagrams of the other groups an agent serves, on their shared port, are
// no misconfiguration: only a group it does not serve is advised of.
func TestAgentAdviceSiblings(t *testing.T) {
	netlab.Require(t)
	const port = 9422
	a := start(t, agentArgs(port, "-group", "web,db")...)
	a.stdout.waitFor(t, `agent serving groups "db", "web"`)
	health := fmt.Sprintf("tcp://198.18.255.1:%d", closedPort(t))
	m := func(group string) []byte {
		return encode(t, pipe.Codec{}, msgOf(group, group+"-member", health))
	}
	// The marker last: each group's Group handles its datagrams in order.
	send(t, port, m("db"), m("web"), m("other"))
	a.stderr.waitFor(t, `are for group "other", not "db" (foreign_group)`)
	a.stderr.waitFor(t, `are for group "other", not "web" (foreign_group)`)
	assert.Equal(t, 0, a.stop(t))
	assert.Equal(t, 2, a.stderr.count("(foreign_group)"), "%q", a.stderr.lines())
}

// pir-agent answers over DNS and HTTP on the addresses it prints, and
// stops both when interrupted. (e2e's TestAgent asks it everything, on a
// lab LAN.)
func TestAgentServes(t *testing.T) {
	netlab.Require(t)
	const port = 9424
	m := start(t, "join", "-4", "-iface", "lo", "-port", strconv.Itoa(port), "-group", "web",
		"-id", "member-a", "-comms", "tcp://198.18.255.1:8080")
	m.stdout.waitFor(t, "joined group")
	a := start(t, agentArgs(port, "-group", "web")...)
	ready := a.stdout.waitFor(t, `agent serving groups "web" on port 9424: DNS on 127.0.0.1:`)
	dnsAddr := strings.Fields(strings.SplitN(ready, "DNS on ", 2)[1])[0]
	httpURL := strings.TrimSuffix(strings.SplitN(ready, "HTTP on ", 2)[1], "/")

	// Blocking queries until member-a is listed.
	var members []struct {
		ID       string `json:"id"`
		CommsURI string `json:"comms_uri"`
		Verdict  string `json:"verdict"`
	}
	index := "0"
	for len(members) == 0 {
		resp, err := http.Get(httpURL + "/v1/groups/web/members?wait=1m&index=" + index)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&members))
		resp.Body.Close()
		index = resp.Header.Get("X-Pir-Index")
	}
	require.Len(t, members, 1)
	assert.Equal(t, "member-a", members[0].ID)
	assert.Equal(t, "tcp://198.18.255.1:8080", members[0].CommsURI)

	for _, network := range []string{"udp", "tcp"} {
		q := new(dns.Msg)
		q.SetQuestion("web.pir.", dns.TypeSRV)
		r, _, err := (&dns.Client{Net: network, Timeout: time.Minute}).Exchange(q, dnsAddr)
		require.NoError(t, err, network)
		require.Len(t, r.Answer, 1, "%s: %v", network, r)
		srv := r.Answer[0].(*dns.SRV)
		assert.Equal(t, "member-a.web.pir.", srv.Target)
		assert.Equal(t, uint16(8080), srv.Port)
	}

	assert.Equal(t, 0, a.stop(t), "stderr: %q", a.stderr.lines())
	_, err := http.Get(httpURL + "/v1/groups")
	require.ErrorIs(t, err, syscall.ECONNREFUSED, "the HTTP server stopped")
	_, err = net.Dial("tcp", dnsAddr)
	require.ErrorIs(t, err, syscall.ECONNREFUSED, "the DNS server stopped")
}

func msgOf(group, id, health string) codec.Message {
	return codec.Message{Group: group, ID: id, Health: health, Comms: health}
}

// An address the agent cannot listen on fails it (exit 1) before it joins
// anything.
func TestAgentAddressInUse(t *testing.T) {
	netlab.Require(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	r := pir(t, "pir-agent", "-4", "-iface", "lo", "-port", "9423", "-dns", "127.0.0.1:0", "-http", ln.Addr().String())
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "pir-agent: -http: listen tcp "+ln.Addr().String()+": bind: address already in use", firstLine(r.stderr))
	assert.Empty(t, r.stdout)
}
