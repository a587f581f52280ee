package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/nslan"
	"github.com/pirlan/pir/internal/nslan/pircli"
)

// helperEnv makes the test binary run a helper program instead of the
// tests: "original GROUP PORT ID ADDR", an emulation of an original pir
// peer.
const helperEnv = "PIR_E2E_HELPER"

func helper(args []string) int {
	if len(args) == 5 && args[0] == "original" {
		port, err := strconv.Atoi(args[2])
		addr, aerr := netip.ParseAddr(args[4])
		if err == nil && aerr == nil {
			return original(args[1], port, args[3], addr)
		}
	}
	fmt.Fprintf(os.Stderr, "e2e helper: bad arguments %q\n", args)
	return 2
}

// origLine is what the original emulation prints, one JSON object a line.
type origLine struct {
	Event     string `json:"event"` // ready, seen, ignored or crash
	ID        string `json:"id,omitempty"`
	HealthURI string `json:"health_uri,omitempty"`
	CommsURI  string `json:"comms_uri,omitempty"`
	Healthy   bool   `json:"healthy,omitempty"` // seen: its probe succeeded
	Fields    int    `json:"fields,omitempty"`  // ignored: how many
	Kind      string `json:"kind,omitempty"`    // ignored: the fifth field
	Payload   string `json:"payload,omitempty"` // crash: the datagram
	Reason    string `json:"reason,omitempty"`  // crash: why
}

// original behaves as a peer of the original pir on eth0: it multicasts
// GROUP|ID|tcp://ADDR:PORT|tcp://ADDR:8080 to 224.0.0.1 every second,
// answers the tcp health probe (0x00 for 0x00), and handles what it hears
// as the original does: a datagram that does not split into exactly four
// fields is dropped; a four-field one whose URIs fail url.Parse or whose
// health URI is not tcp:// crashes the original, so this prints a crash
// line and exits 3. A new peer of its group it probes once and reports as
// seen.
func original(group string, port int, id string, addr netip.Addr) int {
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	say := func(l origLine) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(l)
	}
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "original:", err)
		return 1
	}

	ln, err := net.Listen("tcp4", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		return fail(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				b := make([]byte, 1)
				if n, _ := c.Read(b); n == 1 && b[0] == 0 {
					_, _ = c.Write([]byte{0})
				}
			}()
		}
	}()

	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		return fail(err)
	}
	grp := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 1), Port: port}
	rx, err := net.ListenMulticastUDP("udp4", ifi, grp)
	if err != nil {
		return fail(err)
	}
	tx, err := net.DialUDP("udp4", nil, grp)
	if err != nil {
		return fail(err)
	}
	health := "tcp://" + ln.Addr().String()
	comms := "tcp://" + netip.AddrPortFrom(addr, 8080).String()
	say(origLine{Event: "ready", ID: id, HealthURI: health, CommsURI: comms})
	go func() {
		msg := []byte(strings.Join([]string{group, id, health, comms}, "|"))
		for {
			_, _ = tx.Write(msg)
			time.Sleep(time.Second)
		}
	}()

	seen := make(map[string]bool)
	buf := make([]byte, 8192)
	for {
		n, _, err := rx.ReadFromUDP(buf)
		if err != nil {
			return fail(err)
		}
		payload := string(buf[:n])
		parts := strings.Split(payload, "|")
		if len(parts) != 4 {
			l := origLine{Event: "ignored", Fields: len(parts)}
			if len(parts) > 1 {
				l.ID = parts[1]
			}
			if len(parts) > 4 {
				l.Kind = parts[4]
			}
			say(l)
			continue
		}
		hu, herr := url.Parse(parts[2])
		_, cerr := url.Parse(parts[3])
		switch {
		case herr != nil || cerr != nil:
			say(origLine{Event: "crash", Payload: payload, Reason: fmt.Sprint("url.Parse: ", herr, cerr)})
			return 3
		case hu.Scheme != "tcp":
			say(origLine{Event: "crash", Payload: payload, Reason: "health URI is not tcp://"})
			return 3
		}
		if parts[0] != group || parts[1] == id || seen[parts[1]] {
			continue
		}
		seen[parts[1]] = true
		say(origLine{Event: "seen", ID: parts[1], HealthURI: parts[2], CommsURI: parts[3], Healthy: probe(hu.Host)})
	}
}

// probe is the original's health check.
func probe(hostport string) bool {
	c, err := net.DialTimeout("tcp", hostport, 2*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte{0}); err != nil {
		return false
	}
	b := make([]byte, 1)
	n, err := c.Read(b)
	return err == nil && n == 1 && b[0] == 0
}

// startOriginal runs the original emulation on h, in group "pir" on the
// default port, and returns it with what it announces.
func startOriginal(t *testing.T, h *nslan.Host) (*nslan.Proc, origLine) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := h.Command(context.Background(), exe, "original", "pir", "9999", uuid.NewString(), h.IPv4.String())
	cmd.Env = append(os.Environ(), helperEnv+"=1", "GORACE=atexit_sleep_ms=0")
	p, err := h.StartCommand(cmd)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), meetTimeout)
	defer cancel()
	var ready origLine
	_, _, err = p.WaitLine(ctx, 0, func(l nslan.Line) bool {
		return json.Unmarshal([]byte(l.Text), &ready) == nil && ready.Event == "ready"
	})
	require.NoError(t, err)
	return p, ready
}

// waitOriginal waits for a line of the original emulation that match
// accepts.
func waitOriginal(ctx context.Context, p *nslan.Proc, from int, match func(origLine) bool) (origLine, error) {
	var got origLine
	_, _, err := p.WaitLine(ctx, from, func(l nslan.Line) bool {
		var o origLine
		if json.Unmarshal([]byte(l.Text), &o) != nil {
			return false
		}
		got = o
		return o.Event == "crash" || match(o)
	})
	if err == nil && got.Event == "crash" {
		err = fmt.Errorf("the original pir peer would have crashed on %q: %s", got.Payload, got.Reason)
	}
	return got, err
}

// TestOriginalPeer mixes an original pir peer with pir members, some of
// which can only send extension messages (metadata, a non-tcp health URI).
// The members must list the original; the original must list the members
// that can speak its format, pass their health probes, and survive every
// message they send (joining, announcing, leaving).
func TestOriginalPeer(t *testing.T) {
	l := newLab(t, nslan.Config{Hosts: lanHosts})
	hosts := l.Hosts()
	orig, self := startOriginal(t, hosts[0])

	plain := []*pircli.Peer{
		join(t, hosts[1]),
		join(t, hosts[2], "-4", "-comms", "tcp://10.1.1.1:80"),
	}
	extended := []*pircli.Peer{
		join(t, hosts[3], "-meta", "role=db"),
		join(t, hosts[4], "-health", "http"),
	}
	members := slices.Concat(plain, extended)

	// The members see the original, and each other.
	ctx, cancel := context.WithTimeout(context.Background(), meetTimeout)
	defer cancel()
	for o, e := range requireSeen(t, ctx, members, nil, self.ID, pircli.Joined) {
		assert.Equal(t, self.HealthURI, e.HealthURI, o.Name())
		assert.Equal(t, self.CommsURI, e.CommsURI, o.Name())
		assert.Equal(t, hosts[0].IPv4, netip.MustParseAddrPort(e.Addr).Addr().Unmap(), o.Name())
	}
	requireMesh(t, members, members, nil)

	// The original sees the members that send plain announcements, and
	// their tcp health servers answer its probe.
	for _, p := range plain {
		o, err := waitOriginal(ctx, orig, 0, func(o origLine) bool { return o.Event == "seen" && o.ID == p.ID })
		require.NoError(t, err)
		assert.True(t, o.Healthy, "the original's probe of %s failed", p.Name())
		assert.Equal(t, p.Host().IPv4, hostOf(t, o.HealthURI), "%s announced %s", p.Name(), o.HealthURI)
	}
	o, err := waitOriginal(ctx, orig, 0, func(o origLine) bool { return o.Event == "seen" && o.ID == plain[1].ID })
	require.NoError(t, err)
	assert.Equal(t, "tcp://10.1.1.1:80", o.CommsURI)

	// It has heard the others' extension announcements, ignored them,
	// and is still running.
	for _, p := range extended {
		_, err := waitOriginal(ctx, orig, 0, func(o origLine) bool { return o.Event == "ignored" && o.ID == p.ID && o.Kind == "ann" })
		require.NoError(t, err, "the original never heard %s's announcements", p.Name())
	}
	// Goodbyes are extension messages too.
	from := orig.Len()
	for _, p := range members {
		require.NoError(t, p.Interrupt())
	}
	for _, p := range members {
		_, err := waitOriginal(ctx, orig, from, func(o origLine) bool { return o.Event == "ignored" && o.ID == p.ID && o.Kind == "bye" })
		require.NoError(t, err, "the original never heard %s's goodbye", p.Name())
	}
	select {
	case <-orig.Done():
		t.Fatalf("the original pir peer exited: %v", orig.Wait(ctx))
	default:
	}
	for _, line := range orig.Lines() {
		assert.NotContains(t, line.Text, `"crash"`)
	}
}

// TestOriginalNeverAskedToConfirm: with an original pir peer in the group,
// the members that confirm a crashed member's death ask only members that
// speak the extensions. An original never answers a cfm (its socket is
// connected to the group), so asking it would only make the confirmation
// wait. Counted at the IP layer: no unicast datagram reaches the original's
// host, while the members' hosts get the cfm and evd they exchange.
func TestOriginalNeverAskedToConfirm(t *testing.T) {
	l := newLab(t, nslan.Config{Hosts: 4})
	hosts := l.Hosts()
	_, self := startOriginal(t, hosts[0])
	var members []*pircli.Peer
	for _, h := range hosts[1:] {
		// Their logs are in the message when a wait fails (it failed
		// once at the meet, beside three helpers' builds and benchmarks).
		members = append(members, join(t, h, "-log", "debug"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), meetTimeout)
	defer cancel()
	requireSeen(t, ctx, members, nil, self.ID, pircli.Joined)
	requireMesh(t, members, members, nil)
	for _, h := range hosts {
		countUnicast(t, h)
	}

	crashed, survivors := members[2], members[:2]
	from := mark(survivors...)
	require.NoError(t, crashed.Kill())
	rctx, rcancel := context.WithTimeout(context.Background(), removeTimeout)
	defer rcancel()
	requireSeen(t, rctx, survivors, from, crashed.ID, pircli.Left, pircli.Failed)

	toOriginal := unicastCount(t, hosts[0])
	toMembers := unicastCount(t, hosts[1]) + unicastCount(t, hosts[2])
	t.Logf("figures: unicast datagrams after the crash: %d to the original's host, %d to the survivors' hosts", toOriginal, toMembers)
	assert.Zero(t, toOriginal, "datagrams sent to the original (a cfm it cannot answer)")
	assert.Positive(t, toMembers, "the survivors asked each other to confirm")
}

// countUnicast counts, from now on, the UDP datagrams h receives addressed
// to one of its own addresses, IPv4 or IPv6 (not to a group), with an nft
// counter in h's namespace. It skips the test when nft is missing.
func countUnicast(t *testing.T, h *nslan.Host) {
	t.Helper()
	nftIn(t, h, `table inet pirtest {
	counter unicast {}
	chain in {
		type filter hook input priority 0; policy accept;
		fib daddr type local meta l4proto udp counter name unicast
	}
}
`)
}

// unicastCount reads the counter countUnicast set on h.
func unicastCount(t *testing.T, h *nslan.Host) int {
	t.Helper()
	out := nftIn(t, h, "list counter inet pirtest unicast\n")
	f := strings.Fields(out[strings.Index(out, "packets"):])
	require.GreaterOrEqual(t, len(f), 2, "nft: %s", out)
	n, err := strconv.Atoi(f[1])
	require.NoError(t, err, "nft: %s", out)
	return n
}

// nftIn runs nft(8) with script on its standard input in h's namespace.
func nftIn(t *testing.T, h *nslan.Host, script string) string {
	t.Helper()
	path := ""
	for _, p := range []string{"nft", "/usr/sbin/nft", "/sbin/nft"} {
		if q, err := exec.LookPath(p); err == nil {
			path = q
			break
		}
	}
	if path == "" {
		t.Skip("nft(8) is not installed (Debian: apt-get install nftables): it counts the datagrams")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := h.Command(ctx, path, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "nft on %s: %s", h.Name, out)
	return string(out)
}
