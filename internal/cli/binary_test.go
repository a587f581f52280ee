package cli

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/netlab"
)

// raceEnabled is set by race_test.go when the tests run with -race: the
// pir binary is then built with -race too.
var raceEnabled bool

// pirBinary and agentBinary are the pir and pir-agent commands built by
// TestMain inside the namespace, or "" where no namespace could be made
// (noBinary says why).
var pirBinary, agentBinary, noBinary = "", "", "the pir binaries are built only inside the test's private network namespace"

// binary returns the binary a test's command line runs, and its
// arguments: pir-agent's for a line that starts with "pir-agent", pir's
// for any other.
func binary(args []string) (string, []string) {
	if len(args) > 0 && args[0] == "pir-agent" {
		return agentBinary, args[1:]
	}
	return pirBinary, args
}

// The CLI's tests run inside a private network namespace: its multicast
// stays on that namespace's loopback. There TestMain builds the pir binary
// once, for the tests that run it as a user would.
func TestMain(m *testing.M) {
	if !netlab.Inside() {
		netlab.Main(m) // runs this binary again in a namespace; does not return
	}
	netlab.Enter()
	dir, err := os.MkdirTemp("", "pir-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		pir, err := build(dir, "pir")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		agent, err := build(dir, "pir-agent")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		pirBinary, agentBinary = pir, agent
		return m.Run()
	}()
	os.Exit(code)
}

// build builds the command cmd/NAME into dir, with -race when the tests
// run with it, and returns the binary's path.
func build(dir, name string) (string, error) {
	bin := filepath.Join(dir, name)
	args := []string{"build", "-buildvcs=auto", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	goBuild := func(args ...string) ([]byte, error) {
		build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), append(args, "../../cmd/"+name)...)
		// The namespace has no network: build from the module cache only.
		build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off")
		return build.CombinedOutput()
	}
	if _, err := goBuild(args...); err != nil {
		// Without git (or with a checkout git refuses), without the
		// revision.
		args[1] = "-buildvcs=false"
		if out, err := goBuild(args...); err != nil {
			return "", fmt.Errorf("building %s: %v\n%s", name, err, out)
		}
	}
	return bin, nil
}

// result is how a pir run ended.
type result struct {
	code           int
	stdout, stderr string
}

// firstLine is the first line of s, without its newline.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func needBinary(t *testing.T) {
	t.Helper()
	if pirBinary == "" {
		t.Skip(noBinary)
	}
}

// pir runs the pir binary with args to its end.
func pir(t *testing.T, args ...string) result {
	t.Helper()
	needBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	bin, rest := binary(args)
	cmd := exec.CommandContext(ctx, bin, rest...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "pir %q", args)
		r.code = exit.ExitCode()
	}
	return r
}

// process is a pir command running in the background, its output read
// line by line.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr *lineReader
	done           chan struct{} // closed when it has exited
	err            error         // cmd.Wait's, once done
}

// start starts pir with args; the test stops it (SIGKILL) at its end if it
// is still running.
func start(t *testing.T, args ...string) *process {
	t.Helper()
	needBinary(t)
	bin, rest := binary(args)
	cmd := exec.Command(bin, rest...)
	outR, err := cmd.StdoutPipe()
	require.NoError(t, err)
	errR, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &process{cmd: cmd, stdout: readLines(outR), stderr: readLines(errR), done: make(chan struct{})}
	go func() {
		p.stdout.wg.Wait() // Wait closes the pipes: read them to their end first
		p.stderr.wg.Wait()
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// stop interrupts p (Ctrl-C) and returns its exit code once it has exited.
func (p *process) stop(t *testing.T) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	return p.wait(t)
}

// wait returns p's exit code once it has exited, failing the test if that
// takes more than 30 s.
func (p *process) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("pir %q did not exit within 30 s", p.cmd.Args[1:])
	}
	return p.cmd.ProcessState.ExitCode()
}

// lineReader collects the lines a process writes to one stream.
type lineReader struct {
	wg    sync.WaitGroup
	mu    sync.Mutex
	all   []string
	added chan struct{} // closed and replaced when a line arrives
}

func readLines(r io.Reader) *lineReader {
	l := &lineReader{added: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		s := bufio.NewScanner(r)
		for s.Scan() {
			l.mu.Lock()
			l.all = append(l.all, s.Text())
			close(l.added)
			l.added = make(chan struct{})
			l.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	return l
}

// lines returns the lines read so far.
func (l *lineReader) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all...)
}

// waitFor returns the first line containing substr, waiting for it for
// at most 20 s.
func (l *lineReader) waitFor(t *testing.T, substr string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		l.mu.Lock()
		for _, line := range l.all {
			if strings.Contains(line, substr) {
				l.mu.Unlock()
				return line
			}
		}
		added := l.added
		l.mu.Unlock()
		select {
		case <-added:
		case <-timeout:
			t.Fatalf("no line containing %q within 20 s; got %q", substr, l.lines())
		}
	}
}

// count is how many lines read so far contain substr.
func (l *lineReader) count(substr string) int {
	n := 0
	for _, line := range l.lines() {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

// closedPort returns a TCP port on lo where nothing listens.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", netlab.LoopbackV4.String()+":0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// Usage errors exit 2 with one line naming the flag, before anything is
// opened; help asked for goes to stdout with exit 0.
func TestCommandLine(t *testing.T) {
	needBinary(t)
	for _, c := range []struct {
		args   []string
		code   int
		stderr string // the first line of stderr, exactly
		stdout string // in stdout
	}{
		// help (issue 13, CLI item 7)
		{args: nil, code: 2, stderr: "pir discovers peers on a LAN over IPv4 or IPv6 multicast."},
		{args: []string{"help"}, stdout: "pir watch [flags]"},
		{args: []string{"-h"}, stdout: "pir watch [flags]"},
		{args: []string{"--help"}, stdout: "pir watch [flags]"},
		{args: []string{"help", "join"}, stdout: "-mdns-name"},
		{args: []string{"join", "-h"}, stdout: "-mdns-name"},
		{args: []string{"help", "watch"}, stdout: "-wait-probe"},
		{args: []string{"watch", "-help"}, stdout: "-wait-probe"},
		{args: []string{"help", "genkey"}, stdout: "Usage: pir genkey"},
		{args: []string{"help", "nosuch"}, code: 2, stderr: `pir help: unknown command "nosuch"; run 'pir help' for the commands`},
		{args: []string{"frob"}, code: 2, stderr: `pir: unknown command "frob"; run 'pir help' for the commands`},
		{args: []string{"join", "-nope"}, code: 2, stderr: "pir join: flag provided but not defined: -nope"},
		{args: []string{"watch", "-port", "x"}, code: 2, stderr: `pir watch: invalid value "x" for flag -port: parse error`},
		{args: []string{"watch", "extra"}, code: 2, stderr: `pir watch: unexpected argument "extra"`},
		// values checked before anything is opened (items 4 and 5)
		{args: []string{"join", "-addr4", "10.0.0.1"}, code: 2, stderr: `pir join: -addr4 "10.0.0.1": not an IPv4 multicast address (224.0.0.0/4)`},
		{args: []string{"join", "-addr6", "fd00::1"}, code: 2, stderr: `pir join: -addr6 "fd00::1": not an IPv6 multicast address (ff00::/8, no zone)`},
		{args: []string{"join", "-hops", "300"}, code: 2, stderr: "pir join: -hops 300: want 1 to 255"},
		{args: []string{"watch", "-port", "70000"}, code: 2, stderr: "pir watch: -port 70000: want 1 to 65535"},
		{args: []string{"join", "-log", "loud"}, code: 2, stderr: `pir join: -log "loud": want one of off, error, warn, info, debug, trace`},
		{args: []string{"join", "-group", ""}, code: 2, stderr: `pir join: -group "": want 1 to 255 bytes of UTF-8 without '|' or control characters`},
		{args: []string{"watch", "-group", "a|b"}, code: 2, stderr: `pir watch: -group "a|b": want 1 to 255 bytes of UTF-8 without '|' or control characters`},
		{args: []string{"join", "-id", "a b"}, code: 2, stderr: `pir join: -id "a b": want at most 128 bytes of Printable ASCII without '|' or spaces`},
		{args: []string{"join", "-health", "smtp"}, code: 2, stderr: `pir join: -health "smtp": want tcp, udp or http`},
		{args: []string{"join", "-comms", "nohost"}, code: 2, stderr: `pir join: -comms "nohost": want a URI with a scheme and a host, e.g. tcp://10.0.0.5:8080`},
		{args: []string{"watch", "-policy", "magic"}, code: 2, stderr: `pir watch: -policy "magic": want phi or threshold`},
		{args: []string{"join", "-4", "-6"}, code: 2, stderr: "pir join: -4 and -6 exclude each other"},
		// flags that would do nothing (item 8)
		{args: []string{"join", "-mdns-name", "x"}, code: 2, stderr: "pir join: -mdns-name does nothing without -mdns"},
		{args: []string{"join", "-mdns-service", "_http._tcp"}, code: 2, stderr: "pir join: -mdns-service does nothing without -mdns"},
		{args: []string{"join", "-4", "-addr6", "ff02::1"}, code: 2, stderr: "pir join: -addr6 does nothing with -4"},
		{args: []string{"watch", "-6", "-addr4", "239.1.2.3"}, code: 2, stderr: "pir watch: -addr4 does nothing with -6"},
		{args: []string{"join", "-mdns", "-port", "5000"}, code: 2, stderr: "pir join: -port does nothing with -mdns (mDNS uses 224.0.0.251 and ff02::fb, port 5353)"},
		{args: []string{"join", "-ping", "0", "-self-check", "1s"}, code: 2, stderr: "pir join: -self-check does nothing with -ping 0: without pings every member probes every other"},
		{args: []string{"join", "-mdns", "-ping", "2s"}, code: 2, stderr: "pir join: -ping does nothing with -mdns: members share port 5353 and are probed, not pinged"},
		{args: []string{"watch", "-self-check", "1s"}, code: 2, stderr: "pir watch: -self-check does nothing with pir watch: a watcher has no health of its own to check"},
		{args: []string{"watch", "-mdns", "pir", "-hops", "2"}, code: 2, stderr: "pir watch: -hops does nothing with -mdns (mDNS uses 224.0.0.251 and ff02::fb, port 5353)"},
		{args: []string{"watch", "-mdns", "pir", "-key-file", "k"}, code: 2, stderr: "pir watch: -mdns and -key-file cannot be combined: mDNS records are not authenticated"},
		// pir-agent (issue 16), its own command since issue 15
		{args: []string{"agent"}, code: 2, stderr: "pir agent: the agent is its own command now: run pir-agent (go run ./cmd/pir-agent)"},
		{args: []string{"help", "agent"}, code: 2, stderr: "pir agent: the agent is its own command now: run pir-agent (go run ./cmd/pir-agent)"},
		{args: []string{"pir-agent", "-h"}, stdout: "dig @127.0.0.1 -p 8600 web.pir. SRV"},
		{args: []string{"pir-agent", "-h"}, stdout: "-check-interval"},
		{args: []string{"pir-agent", "-nope"}, code: 2, stderr: "pir-agent: flag provided but not defined: -nope"},
		{args: []string{"pir-agent", "-http", "0.0.0.0:8500"}, code: 2, stderr: `pir-agent: -http "0.0.0.0:8500" is not a loopback address: add -public to serve other hosts`},
		{args: []string{"pir-agent", "-dns", ":8600"}, code: 2, stderr: `pir-agent: -dns ":8600" is not a loopback address: add -public to serve other hosts`},
		{args: []string{"pir-agent", "-dns", "198.18.0.1:53"}, code: 2, stderr: `pir-agent: -dns "198.18.0.1:53" is not a loopback address: add -public to serve other hosts`},
		{args: []string{"pir-agent", "-public"}, code: 2, stderr: "pir-agent: -public does nothing: -dns and -http are loopback addresses"},
		{args: []string{"pir-agent", "-http", "8500"}, code: 2, stderr: `pir-agent: -http "8500": want host:port, e.g. 127.0.0.1:8500`},
		{args: []string{"pir-agent", "-dns", "127.0.0.1:99999"}, code: 2, stderr: `pir-agent: -dns "127.0.0.1:99999": want a port from 0 to 65535`},
		{args: []string{"pir-agent", "-dns", "", "-http", ""}, code: 2, stderr: "pir-agent: -dns and -http are both empty: nothing to serve"},
		{args: []string{"pir-agent", "-domain", "a..b"}, code: 2, stderr: `pir-agent: -domain "a..b": not a domain name`},
		{args: []string{"pir-agent", "-ttl", "4294967295"}, code: 2, stderr: "pir-agent: -ttl 4294967295: want 0 to 2147483647"},
		{args: []string{"pir-agent", "-group", "web,,db"}, code: 2, stderr: `pir-agent: -group "": want 1 to 255 bytes of UTF-8 without '|' or control characters`},
		{args: []string{"pir-agent", "-group", "web,web"}, code: 2, stderr: `pir-agent: -group "web,web": "web" and "web" are one name to DNS`},
		{args: []string{"pir-agent", "-group", "web,Web"}, code: 2, stderr: `pir-agent: -group "web,Web": "web" and "Web" are one name to DNS`},
		{args: []string{"pir-agent", "-group", "Web", "-service", "web=tcp://127.0.0.1:1"}, code: 2, stderr: `pir-agent: -service "web=tcp://127.0.0.1:1": group "web" and -group's "Web" are one name to DNS`},
		{args: []string{"pir-agent", "-group", "web", "-port", "0"}, code: 2, stderr: "pir-agent: -port 0: want 1 to 65535"},
		{args: []string{"pir-agent", "-4", "-6"}, code: 2, stderr: "pir-agent: -4 and -6 exclude each other"},
		{args: []string{"pir-agent", "-service", "web"}, code: 2, stderr: `pir-agent: invalid value "web" for flag -service: want group=value`},
		{args: []string{"pir-agent", "-service", "web=localhost"}, code: 2, stderr: `pir-agent: -service "web=localhost": want group=URI, the URI with a scheme and a host, e.g. web=tcp://127.0.0.1:8080`},
		{args: []string{"pir-agent", "-service", "a|b=tcp://127.0.0.1:1"}, code: 2, stderr: `pir-agent: -service "a|b=tcp://127.0.0.1:1": group "a|b": want 1 to 255 bytes of UTF-8 without '|' or control characters`},
		{args: []string{"pir-agent", "-service", "web=tcp://127.0.0.1:1", "-service", "web=tcp://127.0.0.1:2"}, code: 2, stderr: `pir-agent: -service: group "web" has two; the agent announces one service per group`},
		{args: []string{"pir-agent", "-service", "web=http://user:secret@127.0.0.1:8080/"}, code: 2, stderr: `pir-agent: -service "web=http://user:xxxxx@127.0.0.1:8080/": the URI carries userinfo (user:password@), which every host on the LAN would read`},
		{args: []string{"pir-agent", "-service", "web=udp://127.0.0.1"}, code: 2, stderr: `pir-agent: -service "web=udp://127.0.0.1": the service URI has no port to check: give it one, or a -check`},
		{args: []string{"pir-agent", "-check", "web=tcp"}, code: 2, stderr: `pir-agent: -check "web=tcp": no -service for group "web"`},
		{args: []string{"pir-agent", "-service", "web=tcp://127.0.0.1:1", "-check", "web=tcp", "-check", "web=none"}, code: 2, stderr: `pir-agent: -check: group "web" has two`},
		{args: []string{"pir-agent", "-service", "web=tcp://127.0.0.1:1", "-check", "web=smtp"}, code: 2, stderr: `pir-agent: -check "web=smtp": want tcp, none, an http:// or https:// URL, or exec:COMMAND ARGS`},
		{args: []string{"pir-agent", "-service", "web=tcp://127.0.0.1:1", "-check", "web=exec:"}, code: 2, stderr: `pir-agent: -check "web=exec:": exec: names no command`},
		{args: []string{"pir-agent", "-service", "web=tcp://127.0.0.1:1", "-check", `web=exec:/bin/sh -c "exit 0`}, code: 2, stderr: `pir-agent: -check "web=exec:/bin/sh -c \"exit 0": exec: unterminated double quote`},
		{args: []string{"pir-agent", "-service", "web=tcp://127.0.0.1:1", "-check", "web=http://"}, code: 2, stderr: `pir-agent: -check "web=http://": want an http:// or https:// URL with a host`},
		{args: []string{"pir-agent", "-check-interval", "1s"}, code: 2, stderr: "pir-agent: -check-interval does nothing without -service"},
		{args: []string{"pir-agent", "-service", "web=tcp://127.0.0.1:1", "-check-timeout", "0s"}, code: 2, stderr: "pir-agent: -check-timeout 0s: want more than 0"},
		// runtime errors exit 1
		{args: []string{"watch", "-key-file", "/nonexistent"}, code: 1, stderr: "pir: -key-file: open /nonexistent: no such file or directory"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			r := pir(t, c.args...)
			assert.Equal(t, c.code, r.code, "stderr: %s", r.stderr)
			if c.stderr != "" {
				assert.Equal(t, c.stderr, firstLine(r.stderr))
			} else {
				assert.Empty(t, r.stderr)
			}
			if c.stdout != "" {
				assert.Contains(t, r.stdout, c.stdout)
			}
			if c.code == 2 && len(c.args) > 0 {
				assert.LessOrEqual(t, strings.Count(r.stderr, "\n"), 2, "a usage error is one line (and a hint): %s", r.stderr)
			}
		})
	}
}

// pir version and pir -version print the module version and the VCS
// revision of the build (issue 13, CLI item 6).
func TestVersion(t *testing.T) {
	needBinary(t)
	// What the build recorded. A build in a git checkout records the
	// revision; one in a git worktree (whose .git is a file) does not.
	bi, err := buildinfo.ReadFile(pirBinary)
	require.NoError(t, err)
	want := "pir " + bi.Main.Version
	for _, kv := range bi.Settings {
		if kv.Key == "vcs.revision" {
			want += ", revision " + kv.Value
		}
	}
	for _, args := range [][]string{{"version"}, {"-version"}, {"--version"}} {
		r := pir(t, args...)
		assert.Equal(t, 0, r.code)
		assert.Empty(t, r.stderr)
		assert.True(t, strings.HasPrefix(r.stdout, "pir "), r.stdout)
		assert.Contains(t, r.stdout, runtime.Version())
		assert.True(t, strings.HasPrefix(r.stdout, want), "%q does not start with %q", r.stdout, want)
	}
	r := pir(t, "version", "x")
	assert.Equal(t, 2, r.code)
	assert.Equal(t, `pir version: unexpected argument "x"`, firstLine(r.stderr))
}
