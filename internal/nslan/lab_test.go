package nslan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// helperEnv makes the test binary a helper program instead of running
// tests: the lab's hosts run it to exchange UDP datagrams (ping(8) may be
// missing).
const helperEnv = "PIRLAB_TEST_HELPER"

// echoPort is the UDP port the echo helper serves.
const echoPort = 7

// exitTimeout is the ping helper's exit status when no echo came back.
const exitTimeout = 3

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helper(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// helper runs "echo" (answer every UDP datagram on echoPort, after printing
// "ready") or "ping ADDRPORT TIMEOUT" (send a datagram every 50 ms until one
// comes back: exit 0, or exitTimeout after TIMEOUT).
func helper(args []string) int {
	switch {
	case len(args) == 1 && args[0] == "echo":
		c, err := net.ListenPacket("udp", fmt.Sprintf(":%d", echoPort))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("ready")
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			_, _ = c.WriteTo(buf[:n], from)
		}
	case len(args) == 3 && args[0] == "ping":
		timeout, err := time.ParseDuration(args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c, err := net.Dial("udp", args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		got := make(chan struct{})
		go func() {
			buf := make([]byte, 16)
			for {
				n, err := c.Read(buf)
				if errors.Is(err, syscall.ECONNREFUSED) {
					continue // no echo server (yet)
				}
				if err != nil {
					return
				}
				if string(buf[:n]) == "ping" {
					close(got)
					return
				}
			}
		}()
		deadline := time.After(timeout)
		tick := time.NewTicker(50 * time.Millisecond)
		for {
			_, _ = c.Write([]byte("ping"))
			select {
			case <-got:
				fmt.Println("pong")
				return 0
			case <-deadline:
				return exitTimeout
			case <-tick.C:
			}
		}
	}
	fmt.Fprintf(os.Stderr, "helper: bad arguments %q\n", args)
	return 2
}

func requireLab(t *testing.T) {
	t.Helper()
	if ok, reason := Available(); !ok {
		t.Skip("lab unavailable: " + reason)
	}
}

func newLab(t *testing.T, cfg Config) *Lab {
	t.Helper()
	requireLab(t)
	cfg.Logf = t.Logf
	l, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, l.Close()) })
	return l
}

func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	return exe
}

// startEcho starts the echo helper on h and waits until it serves.
func startEcho(t *testing.T, h *Host) *Proc {
	t.Helper()
	cmd := h.Command(context.Background(), testBinary(t), "echo")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "GORACE=atexit_sleep_ms=0")
	p, err := h.StartCommand(cmd)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err = p.WaitLine(ctx, 0, func(l Line) bool { return l.Text == "ready" })
	require.NoError(t, err)
	return p
}

// ping sends datagrams from h to the echo helper at addr until one comes
// back (nil) or timeout passes (an *exec.ExitError with exitTimeout).
func ping(t *testing.T, h *Host, addr netip.Addr, timeout time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	dst := netip.AddrPortFrom(addr, echoPort).String()
	cmd := h.Command(ctx, testBinary(t), "ping", dst, timeout.String())
	cmd.Env = append(os.Environ(), helperEnv+"=1", "GORACE=atexit_sleep_ms=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %w: %s", dst, h.Name, err, out)
	}
	return nil
}

// requireNoEcho asserts that a ping from h to addr times out (rather than
// failing some other way).
func requireNoEcho(t *testing.T, h *Host, addr netip.Addr) {
	t.Helper()
	err := ping(t, h, addr, 500*time.Millisecond)
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "a datagram came back from %s to %s", addr, h.Name)
	require.Equal(t, exitTimeout, exit.ExitCode(), "%v", err)
}

// namespacesOf lists the namespaces in /run/netns whose name starts with
// prefix.
func namespacesOf(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

// inNS runs a command in h's namespace and returns its output.
func inNS(t *testing.T, h *Host, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := h.Command(ctx, name, args...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return string(out)
}

func TestHostsReachEachOther(t *testing.T) {
	l := newLab(t, Config{Hosts: 3})
	hosts := l.Hosts()
	require.Len(t, hosts, 3)
	for i, h := range hosts {
		assert.Equal(t, i, h.Index)
		assert.Equal(t, fmt.Sprintf("h%d", i), h.Name)
		assert.Equal(t, l.Prefix()+"-"+h.Name, h.NS)
		assert.Equal(t, netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)}), h.IPv4)
		assert.Equal(t, netip.MustParseAddr(fmt.Sprintf("fd42::%d", i+1)), h.IPv6)
		startEcho(t, h)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for _, from := range hosts {
		for _, to := range hosts {
			if from == to {
				continue
			}
			for _, addr := range []netip.Addr{to.IPv4, to.IPv6} {
				wg.Go(func() { errs <- ping(t, from, addr, 10*time.Second) })
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
}

func TestHostSeesOnlyItsOwnInterfaces(t *testing.T) {
	l := newLab(t, Config{Hosts: 2})
	out := inNS(t, l.Host(1), "ip", "-o", "link", "show")
	var names []string
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		require.GreaterOrEqual(t, len(f), 2, line)
		names = append(names, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
	}
	assert.Equal(t, []string{"lo", "eth0"}, names)
	assert.Contains(t, inNS(t, l.Host(1), "ip", "route", "show"), "224.0.0.0/4 dev eth0")
}

func TestFamilies(t *testing.T) {
	t.Run("IPv4 only", func(t *testing.T) {
		l := newLab(t, Config{Hosts: 2, IPv4: true})
		h0, h1 := l.Host(0), l.Host(1)
		assert.False(t, h1.IPv6.IsValid())
		addrs := inNS(t, h1, "ip", "-o", "addr", "show", "dev", "eth0")
		assert.Contains(t, addrs, " inet 198.18.0.2/15 ")
		assert.NotContains(t, addrs, "inet6", "IPv6 is disabled, link-local included")
		startEcho(t, h1)
		require.NoError(t, ping(t, h0, h1.IPv4, 10*time.Second))
	})
	t.Run("IPv6 only", func(t *testing.T) {
		l := newLab(t, Config{Hosts: 2, IPv6: true})
		h0, h1 := l.Host(0), l.Host(1)
		assert.False(t, h1.IPv4.IsValid())
		addrs := inNS(t, h1, "ip", "-o", "addr", "show", "dev", "eth0")
		assert.NotContains(t, addrs, " inet ")
		assert.Contains(t, addrs, " inet6 fd42::2/64 ")
		assert.Contains(t, addrs, " inet6 fe80::")
		assert.NotContains(t, addrs, "tentative")
		assert.NotContains(t, inNS(t, h1, "ip", "route", "show"), "224.0.0.0/4")
		startEcho(t, h1)
		require.NoError(t, ping(t, h0, h1.IPv6, 10*time.Second))
	})
}

func TestLinkDownStopsTraffic(t *testing.T) {
	l := newLab(t, Config{Hosts: 2})
	h0, h1 := l.Host(0), l.Host(1)
	startEcho(t, h1)
	require.NoError(t, ping(t, h0, h1.IPv4, 10*time.Second))

	require.NoError(t, l.LinkDown(h1))
	requireNoEcho(t, h0, h1.IPv4)
	requireNoEcho(t, h0, h1.IPv6)

	require.NoError(t, l.LinkUp(h1))
	require.NoError(t, ping(t, h0, h1.IPv4, 10*time.Second))
	require.NoError(t, ping(t, h0, h1.IPv6, 10*time.Second))
}

func TestLoss(t *testing.T) {
	requireLab(t)
	if ok, reason := AvailableLoss(); !ok {
		t.Skip("no loss: " + reason)
	}
	l := newLab(t, Config{Hosts: 3})
	h0, h1, h2 := l.Host(0), l.Host(1), l.Host(2)
	startEcho(t, h1)
	startEcho(t, h2)
	require.NoError(t, ping(t, h0, h1.IPv4, 10*time.Second))

	require.Error(t, l.SetLoss(h1, 101))
	require.Error(t, l.SetLoss(h1, -1))
	require.NoError(t, l.SetLoss(h1, 100))
	requireNoEcho(t, h0, h1.IPv4)
	requireNoEcho(t, h0, h1.IPv6)
	// Only h1's port drops.
	require.NoError(t, ping(t, h0, h2.IPv4, 10*time.Second))

	require.NoError(t, l.ClearLoss(h1))
	require.NoError(t, ping(t, h0, h1.IPv4, 10*time.Second))
	require.NoError(t, ping(t, h0, h1.IPv6, 10*time.Second))
}

func TestPartition(t *testing.T) {
	requireLab(t)
	if ok, reason := AvailableLoss(); !ok {
		t.Skip("no partitions: " + reason)
	}
	l := newLab(t, Config{Hosts: 4})
	h0, h1, h2, h3 := l.Host(0), l.Host(1), l.Host(2), l.Host(3)
	for _, h := range []*Host{h1, h2, h3} {
		startEcho(t, h)
	}
	require.NoError(t, l.SetSendLoss(h3, 100)) // loss and partitions live together
	require.NoError(t, l.Partition([]*Host{h0, h1}, []*Host{h2, h3}))
	require.NoError(t, ping(t, h0, h1.IPv4, 10*time.Second), "same side")
	requireNoEcho(t, h0, h2.IPv4)
	requireNoEcho(t, h0, h3.IPv6)
	require.NoError(t, l.Heal())
	require.NoError(t, ping(t, h0, h2.IPv4, 10*time.Second))
	requireNoEcho(t, h0, h3.IPv4) // h3's replies are still lost
	require.NoError(t, l.ClearLoss(h3))
	require.NoError(t, ping(t, h0, h3.IPv4, 10*time.Second))
}

func TestProcLines(t *testing.T) {
	l := newLab(t, Config{Hosts: 1})
	h := l.Host(0)
	p, err := h.Start("sh", "-c", "echo one; echo two; printf three; echo oops >&2; exit 4")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	i, line, err := p.WaitLine(ctx, 0, func(l Line) bool { return l.Text == "three" })
	require.NoError(t, err, "an unfinished last line counts when the process exits")
	assert.Equal(t, 2, i)
	assert.False(t, line.At.Before(p.Started()))

	_, _, err = p.WaitLine(ctx, 0, func(l Line) bool { return l.Text == "four" })
	require.ErrorIs(t, err, ErrExited)
	assert.Contains(t, err.Error(), "oops")

	var exit *exec.ExitError
	require.ErrorAs(t, p.Wait(ctx), &exit)
	assert.Equal(t, 4, exit.ExitCode())
	lines := p.Lines()
	require.Len(t, lines, 3)
	assert.Equal(t, "one", lines[0].Text)
	for i := 1; i < len(lines); i++ {
		assert.False(t, lines[i].At.Before(lines[i-1].At))
	}

	_, err = h.StartCommand(exec.Command("true"))
	require.Error(t, err, "a command outside the host's namespace")
}

func TestInterruptAndKill(t *testing.T) {
	l := newLab(t, Config{Hosts: 1})
	h := l.Host(0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// sh ignores nothing here: trap turns SIGINT into a line and exit 0.
	p, err := h.Start("sh", "-c", `trap 'echo interrupted; exit 0' INT; echo ready; while :; do sleep 0.05; done`)
	require.NoError(t, err)
	_, _, err = p.WaitLine(ctx, 0, func(l Line) bool { return l.Text == "ready" })
	require.NoError(t, err)
	require.NoError(t, p.Interrupt())
	_, _, err = p.WaitLine(ctx, 0, func(l Line) bool { return l.Text == "interrupted" })
	require.NoError(t, err)
	require.NoError(t, p.Wait(ctx))

	p, err = h.Start("sh", "-c", `trap 'echo interrupted' INT; echo ready; while :; do sleep 0.05; done`)
	require.NoError(t, err)
	_, _, err = p.WaitLine(ctx, 0, func(l Line) bool { return l.Text == "ready" })
	require.NoError(t, err)
	require.NoError(t, p.Kill())
	var exit *exec.ExitError
	require.ErrorAs(t, p.Wait(ctx), &exit)
	assert.Equal(t, "signal: killed", exit.Error())
	assert.NotContains(t, p.Stderr()+fmt.Sprint(p.Lines()), "interrupted")
}

func TestCloseRemovesEverything(t *testing.T) {
	requireLab(t)
	l, err := New(Config{Hosts: 3, Logf: t.Logf})
	require.NoError(t, err)
	assert.Len(t, namespacesOf(t, l.Prefix()+"-"), 4)
	p := startEcho(t, l.Host(2))

	require.NoError(t, l.Close())
	select {
	case <-p.Done():
	default:
		t.Fatal("Close returned before its process exited")
	}
	assert.Empty(t, namespacesOf(t, l.Prefix()+"-"))
	require.NoError(t, l.Close(), "Close is idempotent")

	_, err = l.Host(0).Start("true")
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, l.LinkDown(l.Host(0)), ErrClosed)
	require.ErrorIs(t, l.SetLoss(l.Host(0), 10), ErrClosed)
}

func TestNewCleansUpWhenItFails(t *testing.T) {
	requireLab(t)
	for _, step := range []string{"namespaces", "sysctl", "switch", "hosts"} {
		t.Run(step, func(t *testing.T) {
			prefix := fmt.Sprintf("pirlabtest-%d-fail-%s", os.Getpid(), step)
			_, err := New(Config{Hosts: 3, Prefix: prefix, Logf: t.Logf, failAt: step})
			require.ErrorContains(t, err, step)
			assert.Empty(t, namespacesOf(t, prefix+"-"))
		})
	}
}

func TestNewDeletesStale(t *testing.T) {
	requireLab(t)
	prefix := fmt.Sprintf("pirlabtest-%d-stale", os.Getpid())
	tl := findTools()
	for _, name := range []string{prefix + "-sw", prefix + "-h7"} {
		out, err := exec.Command(tl.ip, "netns", "add", name).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	t.Cleanup(func() {
		for _, name := range namespacesOf(t, prefix+"-") {
			_ = exec.Command(tl.ip, "netns", "delete", name).Run()
		}
	})

	l, err := New(Config{Hosts: 2, Prefix: prefix, Logf: t.Logf})
	require.NoError(t, err, "a stale switch namespace is deleted, not reused")
	assert.ElementsMatch(t, []string{prefix + "-sw", prefix + "-h0", prefix + "-h1"}, namespacesOf(t, prefix+"-"))
	require.NoError(t, l.Close())
	assert.Empty(t, namespacesOf(t, prefix+"-"))
}

func TestConfigErrors(t *testing.T) {
	requireLab(t)
	for _, cfg := range []Config{
		{Hosts: -1},
		{Hosts: MaxHosts + 1},
		{Prefix: "a/b"},
		{Prefix: ".."},
		{Prefix: strings.Repeat("x", 201)},
	} {
		_, err := New(cfg)
		assert.Error(t, err, "%+v", cfg)
	}
}

func TestAddrAt(t *testing.T) {
	assert.Equal(t, "198.18.0.1", addrAt(netV4, 1).String())
	assert.Equal(t, "198.18.1.0", addrAt(netV4, 256).String())
	assert.Equal(t, "198.18.3.232", addrAt(netV4, 1000).String())
	assert.Equal(t, "fd42::3e8", addrAt(netV6, 1000).String())
}

// Start forks the program straight into the host's namespace, and leaves
// every thread of the caller in its own.
func TestStartRunsInHostNamespace(t *testing.T) {
	l := newLab(t, Config{Hosts: 2})
	ours := threadNamespaces(t)
	require.Len(t, ours, 1, "the test's threads share one namespace")
	for _, h := range l.Hosts() {
		var st syscall.Stat_t
		require.NoError(t, syscall.Stat(filepath.Join(netnsDir, h.NS), &st))
		for range 20 {
			p, err := h.Start("readlink", "/proc/self/ns/net")
			require.NoError(t, err)
			require.NoError(t, p.Wait(context.Background()))
			lines := p.Lines()
			require.Len(t, lines, 1)
			assert.Equal(t, fmt.Sprintf("net:[%d]", st.Ino), lines[0].Text, "%s runs in %s's namespace", p.name(), h.Name)
			assert.Equal(t, "readlink", p.name())
		}
	}
	assert.Equal(t, ours, threadNamespaces(t), "every thread is back in its own namespace")
}

// threadNamespaces returns the network namespaces of this process's
// threads.
func threadNamespaces(t *testing.T) map[string]bool {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/ns/net")
	require.NoError(t, err)
	out := map[string]bool{}
	for _, f := range tasks {
		if ns, err := os.Readlink(f); err == nil { // a thread may have gone
			out[ns] = true
		}
	}
	return out
}
