package cli

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/auth"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport/multicast"
)

// send multicasts datagrams to 224.0.0.1:port on lo, from lo's address,
// in order.
func send(t *testing.T, port int, datagrams ...[]byte) {
	t.Helper()
	c, err := multicast.New(multicast.Config{Network: "udp4", Interfaces: []string{netlab.Loopback},
		Group: netip.AddrPortFrom(multicast.DefaultGroupV4, uint16(port)), RescanInterval: -1})
	require.NoError(t, err)
	defer c.Close()
	for _, b := range datagrams {
		require.NoError(t, c.Send(b))
	}
}

func encode(t *testing.T, c codec.Codec, m codec.Message) []byte {
	t.Helper()
	if m.Kind == 0 {
		m.Kind = codec.Announce
	}
	b, err := c.Encode(nil, &m)
	require.NoError(t, err)
	return b
}

// keyFile writes a new group key to a file and returns its path and a
// codec that signs with it.
func keyFile(t *testing.T) (string, codec.Codec) {
	t.Helper()
	key := auth.NewKey()
	path := t.TempDir() + "/group.key"
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf("%x\n", key)), 0o600))
	keys, err := auth.ParseKeyring(strings.NewReader(fmt.Sprintf("%x\n", key)))
	require.NoError(t, err)
	c, err := auth.New(pipe.Codec{}, auth.Config{Keys: keys})
	require.NoError(t, err)
	return path, c
}

// A member misconfigured against the others is told so once per source
// at the default log level, with what to check (issue 13, CLI item 1):
// datagrams signed with another key, unsigned ones in a keyed group,
// signed ones in an unkeyed group, another group on the port, a health URI
// where nothing listens. Each datagram is sent twice; the advice is
// printed once.
func TestAdvice(t *testing.T) {
	netlab.Require(t)
	const src = "198.18.255.1" // lo's address, the source of everything sent here
	mine, myCodec := keyFile(t)
	_, otherCodec := keyFile(t)
	health := fmt.Sprintf("tcp://%s:%d", src, closedPort(t))
	msg := func(group, id string) codec.Message {
		return codec.Message{Group: group, ID: id, Health: health, Comms: health}
	}

	t.Run("keyed", func(t *testing.T) {
		const port = 9411
		w := start(t, "watch", "-4", "-iface", "lo", "-port", strconv.Itoa(port), "-group", "web", "-key-file", mine)
		w.stdout.waitFor(t, "watching group")
		unknown := encode(t, otherCodec, msg("web", "a"))
		plain := encode(t, pipe.Codec{}, msg("web", "b"))
		tampered := encode(t, myCodec, msg("web", "c"))
		tampered[len(tampered)-1] ^= 1
		// Each twice, then a marker: once its advice is out, the others'
		// datagrams have been handled (one receiver, in order).
		send(t, port, unknown, unknown, plain, plain, tampered, tampered,
			encode(t, myCodec, msg("db", "d")))
		w.stderr.waitFor(t, "foreign_group")
		assert.Equal(t, 0, w.stop(t))
		got := w.stderr.lines()
		require.NotEmpty(t, got)
		assert.Equal(t, "pir: datagrams from "+src+" are signed with a key not in "+mine+" (unknown_key): check -key-file on both members", got[0])
		assert.Equal(t, 1, w.stderr.count("(unknown_key)"), "%q", got)
		assert.Equal(t, 1, w.stderr.count("are not authenticated (unauthenticated): that member needs -key-file"), "%q", got)
		assert.Equal(t, 1, w.stderr.count("(bad_tag)"), "%q", got)
		assert.Equal(t, 1, w.stderr.count(`are for group "db", not "web" (foreign_group): ignored; if you meant that group, check -group`), "%q", got)
	})

	t.Run("unkeyed", func(t *testing.T) {
		const port = 9412
		w := start(t, "watch", "-4", "-iface", "lo", "-port", strconv.Itoa(port), "-group", "web")
		w.stdout.waitFor(t, "watching group")
		signed := encode(t, myCodec, msg("web", "a"))
		send(t, port, signed, encode(t, myCodec, msg("web", "a2")), encode(t, pipe.Codec{}, msg("web", "refuser")))
		// The forged member's health URI refuses: told once, though it is
		// probed again and again.
		w.stderr.waitFor(t, "are refused")
		w.stdout.waitFor(t, "refuser left")
		assert.Equal(t, 0, w.stop(t))
		got := w.stderr.lines()
		require.NotEmpty(t, got)
		assert.Equal(t, "pir: datagrams from "+src+" are authenticated with a group key and this member has none (malformed): add -key-file", got[0])
		assert.Equal(t, 1, w.stderr.count("(malformed)"), "%q", got)
		assert.Equal(t, 1, w.stderr.count("pir: health probes to "+health+" are refused: nothing listens there"), "%q", got)
	})
}

// Forged datagrams from many sources print a few lines, not one per
// source: the advice is bounded.
func TestAdviceBounded(t *testing.T) {
	var out bytes.Buffer
	a := NewAdviser(&out, "web", "")
	for i := range 1000 {
		a.setSource(netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 9999))
		var m codec.Message
		a.decoded([]byte("pa1:xxxx"), &m, codec.ErrMalformed)
	}
	assert.Equal(t, maxAdvised+1, strings.Count(out.String(), "\n"), out.String())
	assert.Contains(t, out.String(), "pir: more sources with keyed, not shown")
	assert.LessOrEqual(t, len(a.toldSrc), maxAdvised)
}

// A named interface that does not exist, is down or cannot multicast is
// refused, naming it and the interfaces that would do (issue 13, CLI
// item 2).
func TestInterfaceErrors(t *testing.T) {
	netlab.Require(t)
	netlab.MustIP(t, "link", "add", "pirva", "type", "veth", "peer", "name", "pirvb")
	t.Cleanup(func() { _, _ = netlab.IP("link", "del", "pirva") })
	for _, cmd := range []string{"watch", "join"} {
		r := pir(t, cmd, "-iface", "nosuch0")
		assert.Equal(t, 2, r.code)
		assert.Equal(t, "pir "+cmd+": -iface nosuch0: no such interface (usable: lo)", firstLine(r.stderr))
	}
	r := pir(t, "join", "-iface", "lo,pirva")
	assert.Equal(t, 2, r.code)
	assert.Equal(t, "pir join: -iface pirva: interface is down (usable: lo)", firstLine(r.stderr))

	netlab.MustIP(t, "link", "set", "pirva", "up", "multicast", "off")
	netlab.MustIP(t, "link", "set", "pirvb", "up")
	r = pir(t, "watch", "-iface", "pirva")
	assert.Equal(t, 2, r.code)
	assert.Equal(t, "pir watch: -iface pirva: interface cannot multicast (no MULTICAST flag) (usable: lo, pirvb)", firstLine(r.stderr))

	netlab.MustIP(t, "link", "set", "pirva", "multicast", "on")
	r = pir(t, "watch", "-4", "-iface", "pirva")
	assert.Equal(t, 2, r.code)
	assert.Equal(t, "pir watch: -iface pirva: interface has no IPv4 address (usable: lo)", firstLine(r.stderr))
}

// watch -t lists the members that answered and passed their first probe,
// then exits 0 (issue 13, CLI item 3).
func TestWatchOnce(t *testing.T) {
	netlab.Require(t)
	const port = "9413"
	base := []string{"-4", "-iface", "lo", "-port", port, "-group", "web"}

	r := pir(t, append([]string{"watch", "-t"}, base...)...)
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Empty(t, r.stdout, "nobody is there")

	m1 := start(t, append([]string{"join", "-id", "m1", "-meta", "role=db"}, base...)...)
	m2 := start(t, append([]string{"join", "-id", "m2"}, base...)...)
	m1.stdout.waitFor(t, "m2 joined")
	m2.stdout.waitFor(t, "m1 joined")

	r = pir(t, append([]string{"watch", "-t"}, base...)...)
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Empty(t, r.stderr)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	require.Len(t, lines, 2, r.stdout)
	assert.Contains(t, lines[0], "+ m1 joined  health=tcp://198.18.255.1:")
	assert.Contains(t, lines[0], "meta=map[role:db]")
	assert.Contains(t, lines[1], "+ m2 joined")

	r = pir(t, append([]string{"watch", "-t", "-json"}, base...)...)
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, 2, strings.Count(r.stdout, `"event":"joined"`), r.stdout)

	assert.Equal(t, 0, m1.stop(t))
	assert.Equal(t, 0, m2.stop(t))
	m1.stdout.waitFor(t, `left group "web"`)
}

// pir watch -json | head -1 ends when head does, though the group is quiet
// and pir has nothing more to write (issue 13, CLI item 3).
func TestWatchEndsWhenReaderGoes(t *testing.T) {
	netlab.Require(t)
	needBinary(t)
	const port = "9414"
	base := []string{"-4", "-iface", "lo", "-port", port, "-group", "web"}
	m := start(t, append([]string{"join", "-id", "m1"}, base...)...)
	m.stdout.waitFor(t, "joined group")

	w := exec.Command(pirBinary, append([]string{"watch", "-json"}, base...)...)
	r, wr, err := os.Pipe()
	require.NoError(t, err)
	w.Stdout = wr
	var stderr bytes.Buffer
	w.Stderr = &stderr
	require.NoError(t, w.Start())
	wr.Close()
	line := make([]byte, 4096)
	n, err := r.Read(line) // head -1
	require.NoError(t, err)
	assert.Contains(t, string(line[:n]), `"id":"m1"`)
	require.NoError(t, r.Close())

	exited := make(chan error, 1)
	go func() { exited <- w.Wait() }()
	select {
	case err := <-exited:
		assert.NoError(t, err, "stderr: %s", &stderr)
	case <-time.After(20 * time.Second):
		_ = w.Process.Kill()
		<-exited
		t.Fatal("pir watch still runs 20 s after its reader went away")
	}
	assert.Equal(t, 0, m.stop(t))
}

// join prints the health URIs peers will probe, one per link, not the
// address it listens on (issue 13, CLI item 9).
func TestJoinPrintsProbedAddresses(t *testing.T) {
	netlab.Require(t)
	m := start(t, "join", "-4", "-iface", "lo", "-port", "9415", "-id", "m1")
	line := m.stdout.waitFor(t, "joined group")
	assert.Regexp(t, `joined group "pir" on port 9415 as m1, health tcp://198\.18\.255\.1:\d+ \(lo\)$`, line)
	assert.Equal(t, 0, m.stop(t))
}

// Forged member fields (ID, URIs, metadata) cannot write control
// characters to the terminal: pir watch and pir join print them escaped
// (issue 12, attack 9).
func TestTerminalInjection(t *testing.T) {
	netlab.Require(t)
	const port = 9416
	base := []string{"-4", "-iface", "lo", "-port", strconv.Itoa(port), "-group", "web"}
	hc := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	require.NoError(t, hc.Start(netlab.LoopbackV4.String()+":0"))
	defer hc.Close()

	w := start(t, append([]string{"watch"}, base...)...)
	j := start(t, append([]string{"join", "-id", "victim"}, base...)...)
	w.stdout.waitFor(t, "victim joined")
	j.stdout.waitFor(t, "joined group")

	// A line that erases the one it is written on and draws its own.
	forged := "\r\x1b[2K" + time.Now().Format("15:04:05.000") + " + db-primary joined\x1b]0;owned\a\u202e"
	h := hc.URI().String()
	send(t, port, encode(t, pipe.Codec{}, codec.Message{Group: "web", ID: "evil", Health: h, Comms: h,
		Meta: map[string]string{"note" + forged: forged}}))
	for _, p := range []*process{w, j} {
		line := p.stdout.waitFor(t, "evil joined")
		assert.Contains(t, line, `meta=map[note\r\x1b[2K`)
		assert.Contains(t, line, `db-primary joined\x1b]0;owned\a\u202e]`)
	}
	assert.Equal(t, 0, w.stop(t))
	assert.Equal(t, 0, j.stop(t))
	for _, p := range []*process{w, j} {
		for _, line := range p.stdout.lines() {
			for _, r := range line {
				assert.True(t, strconv.IsPrint(r), "raw %U in %q", r, line)
			}
		}
	}
}

// A Config the library refuses is reported with the flags' names, not the
// Config fields' (issue 13, CLI item 5).
func TestConfigErrorNamesFlags(t *testing.T) {
	err := discovery.Config{Transport: noTransport{}, Passive: true, Self: discovery.Peer{ID: "a b"}, ProbeFanout: -1}.Validate()
	require.Error(t, err)
	var ue *usageError
	require.ErrorAs(t, ConfigError("pir join", err), &ue)
	assert.Contains(t, ue.msg, "-group")
	assert.Contains(t, ue.msg, "-id")
	assert.Contains(t, ue.msg, "-probe-fanout")
	assert.NotContains(t, ue.msg, "Self.ID")
	assert.NotContains(t, ue.msg, "\n")
	other := errors.New("health-check server: address in use")
	assert.Equal(t, other, ConfigError("pir join", other))
}
