package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport/multicast"
)

func TestDemo(t *testing.T) {
	netlab.Require(t)
	for _, args := range [][]string{{"demo", "-peers", "3"}, {"demo", "-peers", "3", "-6", "-port", "9998"}} {
		if args[len(args)-1] == "9998" && !netlab.AvailableIPv6() {
			continue
		}
		var out, errOut bytes.Buffer
		require.Equal(t, 0, run(context.Background(), args, &out, &errOut), "stderr: %s\nstdout: %s", &errOut, &out)
		s := out.String()
		assert.Contains(t, s, "private network namespace")
		assert.Contains(t, s, "all 3 peers see each other")
		assert.Contains(t, s, "peer-1: - peer-3 left (failed)")
		assert.Contains(t, s, "peer-1: - peer-2 left (goodbye)")
	}
}

func TestDemoInMemory(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"demo", "-mem", "-peers", "3"}, &out, &errOut), "stderr: %s", &errOut)
	assert.Contains(t, out.String(), "in-memory LAN")
	assert.Contains(t, out.String(), "peer-1: - peer-2 left (goodbye)")
}

// lines collects what a command prints, line by line.
type lines struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	ch   chan string
	done bool
}

func newLines() *lines { return &lines{ch: make(chan string, 256)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		i := bytes.IndexByte(l.buf.Bytes(), '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(l.buf.Next(i + 1))
		l.ch <- strings.TrimSuffix(line, "\n")
	}
}

// waitJSON reads JSON lines until one matches, failing after 10 s.
func (l *lines) waitJSON(t *testing.T, match func(jsonEvent) bool) jsonEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line := <-l.ch:
			var e jsonEvent
			require.NoError(t, json.Unmarshal([]byte(line), &e), "not JSON: %q", line)
			if match(e) {
				return e
			}
		case <-timeout:
			t.Fatal("no matching event within 10 s")
		}
	}
}

// pir watch sees pir join members and original pir peers, and a graceful
// leave; the watcher itself is seen by nobody.
func TestJoinAndWatch(t *testing.T) {
	netlab.Require(t)
	const port = "9401"
	base := []string{"-4", "-iface", "lo", "-port", port, "-group", "web"}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	start := func(ctx context.Context, out *lines, args ...string) (done chan struct{}) {
		done = make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			var errOut bytes.Buffer
			if code := run(ctx, args, out, &errOut); code != 0 {
				t.Errorf("pir %v: exit %d: %s", args, code, &errOut)
			}
		}()
		return done
	}

	watched := newLines()
	start(ctx, watched, append([]string{"watch", "-json"}, base...)...)
	joinCtx, leave := context.WithCancel(ctx)
	joined := newLines()
	joinDone := start(joinCtx, joined, append([]string{"join", "-json", "-id", "member-a", "-meta", "role=db"}, base...)...)

	e := watched.waitJSON(t, func(e jsonEvent) bool { return e.Event == "joined" && e.ID == "member-a" })
	assert.Equal(t, map[string]string{"role": "db"}, e.Meta)
	assert.True(t, strings.HasPrefix(e.Health, "tcp://198.18.255.1:"), "the interface's own address is advertised: %s", e.Health)

	// An original pir peer: raw 4-field announcements and the byte probe.
	hc := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	require.NoError(t, hc.Start(netip.AddrPortFrom(netlab.LoopbackV4, 0).String()))
	defer hc.Close()
	old := "web|4972084b-10a3-4d9d-8523-7e25b7e50141|" + hc.URI().String() + "|tcp://10.1.1.1:80"
	sendRaw(t, old, port)
	e = watched.waitJSON(t, func(e jsonEvent) bool { return e.ID == "4972084b-10a3-4d9d-8523-7e25b7e50141" })
	assert.Equal(t, "joined", e.Event)
	assert.Equal(t, "tcp://10.1.1.1:80", e.Comms)

	// member-a probes the original peer before listing it.
	joined.waitJSON(t, func(e jsonEvent) bool { return e.ID == "4972084b-10a3-4d9d-8523-7e25b7e50141" && e.Event == "joined" })

	leave() // Ctrl-C: member-a says goodbye
	e = watched.waitJSON(t, func(e jsonEvent) bool { return e.ID == "member-a" && e.Event == "left" })
	assert.Equal(t, "goodbye", e.Reason)

	// member-a's own view never listed the watcher.
	<-joinDone
	close(joined.ch)
	for line := range joined.ch {
		assert.NotContains(t, line, "watch-", "the watcher is nobody's member")
	}
}

// sendRaw multicasts one datagram to 224.0.0.1 on lo, as an original pir
// peer would.
func sendRaw(t *testing.T, payload, port string) {
	t.Helper()
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	c, err := multicast.New(multicast.Config{Interfaces: []string{netlab.Loopback},
		Group: netip.AddrPortFrom(multicast.DefaultGroupV4, uint16(p)), RescanInterval: -1})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Send([]byte(payload)))
}

// With -key-file only members holding the key see each other.
func TestKeyFile(t *testing.T) {
	netlab.Require(t)
	var key, errOut bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"genkey"}, &key, &errOut))
	assert.Len(t, strings.TrimSpace(key.String()), 64)
	assert.Contains(t, errOut.String(), "key ID")
	file := t.TempDir() + "/group.key"
	require.NoError(t, os.WriteFile(file, key.Bytes(), 0o600))

	const port = "9402"
	base := []string{"-4", "-iface", "lo", "-port", port, "-group", "sec", "-json"}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	start := func(out *lines, args ...string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var errOut bytes.Buffer
			if code := run(ctx, args, out, &errOut); code != 0 {
				t.Errorf("pir %v: exit %d: %s", args, code, &errOut)
			}
		}()
	}
	keyed, plain := newLines(), newLines()
	start(keyed, append([]string{"watch", "-key-file", file}, base...)...)
	start(plain, append([]string{"watch"}, base...)...)
	start(newLines(), append([]string{"join", "-id", "with-key", "-key-file", file}, base...)...)
	start(newLines(), append([]string{"join", "-id", "without"}, base...)...)

	keyed.waitJSON(t, func(e jsonEvent) bool { return e.ID == "with-key" })
	plain.waitJSON(t, func(e jsonEvent) bool { return e.ID == "without" })
	cancel()
	wg.Wait()
	close(keyed.ch)
	close(plain.ch)
	for line := range keyed.ch {
		assert.NotContains(t, line, `"without"`)
	}
	for line := range plain.ch {
		assert.NotContains(t, line, `"with-key"`)
	}
}

// run runs pir with args.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return Pir(ctx, args, stdout, stderr)
}
