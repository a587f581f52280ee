package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/netlab"
)

func TestSplitWords(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "", want: nil},
		{in: "  \t ", want: nil},
		{in: "/bin/true", want: []string{"/bin/true"}},
		{in: ` /bin/sh  -c "exit 0" `, want: []string{"/bin/sh", "-c", "exit 0"}},
		{in: `/bin/sh -c 'test -e "a b"'`, want: []string{"/bin/sh", "-c", `test -e "a b"`}},
		{in: `a"b c"'d e'f`, want: []string{"ab cd ef"}},
		{in: `"say \"hi\" \\ \n"`, want: []string{`say "hi" \ \n`}},
		{in: `a\ b \'c`, want: []string{"a b", "'c"}},
		{in: `''`, want: []string{""}},
		{in: `$HOME * ~`, want: []string{"$HOME", "*", "~"}}, // nothing expanded
		{in: `"open`, err: "exec: unterminated double quote"},
		{in: `'open`, err: "exec: unterminated single quote"},
		{in: `end\`, err: "exec: a backslash ends the command"},
	} {
		got, err := splitWords(c.in)
		if c.err != "" {
			assert.EqualError(t, err, c.err, "%q", c.in)
			continue
		}
		require.NoError(t, err, "%q", c.in)
		assert.Equal(t, c.want, got, "%q", c.in)
	}
}

// A service on loopback is announced with the unspecified address of its
// family, which the Group replaces with each link's own; other hosts stay.
func TestAnnounced(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://127.0.0.1:8080":      "tcp://0.0.0.0:8080",
		"tcp://127.1.2.3:8080":      "tcp://0.0.0.0:8080",
		"http://[::1]:8080/x?y=1":   "http://[::]:8080/x?y=1",
		"http://127.0.0.1/":         "http://0.0.0.0/",
		"tcp://[::1]":               "tcp://[::]",
		"http://localhost:8080/":    "http://0.0.0.0:8080/",
		"tcp://0.0.0.0:1":           "tcp://0.0.0.0:1",
		"tcp://198.18.0.1:8080":     "tcp://198.18.0.1:8080",
		"redis://db.example:6379/0": "redis://db.example:6379/0",
	} {
		u, err := url.Parse(in)
		require.NoError(t, err)
		assert.Equal(t, want, announced(u).String(), in)
		assert.Equal(t, in, u.String(), "the given URI is not changed")
	}
}

func TestDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://127.0.0.1:8080":    "127.0.0.1:8080",
		"tcp://0.0.0.0:8080":      "127.0.0.1:8080",
		"tcp://[::]:8080":         "[::1]:8080",
		"http://[fd42::1]/":       "[fd42::1]:80",
		"https://svc.example/x":   "svc.example:443",
		"grpc://198.18.0.1:50051": "198.18.0.1:50051",
	} {
		u, err := url.Parse(in)
		require.NoError(t, err)
		got, err := dialAddr(u)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := dialAddr(&url.URL{Scheme: "udp", Host: "127.0.0.1"})
	assert.Error(t, err)
}

func TestCheckListenAddr(t *testing.T) {
	for addr, loopback := range map[string]bool{
		"127.0.0.1:8500": true, "127.9.9.9:0": true, "[::1]:8600": true, "localhost:1": true,
		"0.0.0.0:8500": false, "[::]:8500": false, ":8500": false, "198.18.0.1:53": false,
		"[fe80::1%eth0]:53": false, "example.com:80": false,
	} {
		lo, err := checkListenAddr(addr)
		require.NoError(t, err, addr)
		assert.Equal(t, loopback, lo, addr)
	}
	for _, addr := range []string{"8500", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:-1", "[::1]:65536"} {
		_, err := checkListenAddr(addr)
		assert.Error(t, err, addr)
	}
}

// runParsed runs the check that spec names for the service at uri once.
func runParsed(t *testing.T, spec, uri string, timeout time.Duration) error {
	t.Helper()
	u, err := url.Parse(uri)
	require.NoError(t, err)
	c, err := parseCheck(spec, u)
	require.NoError(t, err)
	return runCheck(context.Background(), c, timeout)
}

func TestTCPCheck(t *testing.T) {
	netlab.Require(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	// The default check connects to the service's own address; 0.0.0.0
	// is checked on loopback.
	require.NoError(t, runParsed(t, "", "tcp://127.0.0.1:"+port, time.Minute))
	require.NoError(t, runParsed(t, "tcp", "tcp://0.0.0.0:"+port, time.Minute))
	require.NoError(t, ln.Close())
	err = runParsed(t, "tcp", "tcp://127.0.0.1:"+port, time.Minute)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
}

func TestHTTPCheck(t *testing.T) {
	netlab.Require(t)
	var status atomic.Int32
	status.Store(http.StatusOK)
	var agent atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agent.Store(r.UserAgent())
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/healthz", http.StatusFound)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	require.NoError(t, runParsed(t, srv.URL+"/healthz", "tcp://127.0.0.1:1", time.Minute))
	assert.Equal(t, "pir-agent-check", agent.Load())
	status.Store(http.StatusNoContent)
	require.NoError(t, runParsed(t, srv.URL+"/healthz", "tcp://127.0.0.1:1", time.Minute))
	status.Store(http.StatusServiceUnavailable)
	require.EqualError(t, runParsed(t, srv.URL+"/healthz", "tcp://127.0.0.1:1", time.Minute), "status 503 Service Unavailable")
	status.Store(http.StatusOK)
	require.EqualError(t, runParsed(t, srv.URL+"/moved", "tcp://127.0.0.1:1", time.Minute), "status 302 Found", "a redirect is not followed")
}

func TestExecCheck(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "healthy")
	spec := `exec:/bin/sh -c 'test -e "$0"' ` + flag
	require.Error(t, runParsed(t, spec, "tcp://127.0.0.1:1", time.Minute))
	require.NoError(t, os.WriteFile(flag, nil, 0o600))
	require.NoError(t, runParsed(t, spec, "tcp://127.0.0.1:1", time.Minute))
	require.Error(t, runParsed(t, "exec:"+filepath.Join(dir, "nosuch"), "tcp://127.0.0.1:1", time.Minute))
}

// A check that outlives its context fails, and its whole process group is
// killed: a shell's child does not linger.
func TestExecCheckKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	// The child writes its PID, then sleeps; the shell waits for it.
	u, err := url.Parse("tcp://127.0.0.1:1")
	require.NoError(t, err)
	c, err := parseCheck(`exec:/bin/sh -c 'sleep 600 & echo $! > "$0.tmp"; mv "$0.tmp" "$0"; wait' `+pidFile, u)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ended := make(chan error, 1)
	go func() { ended <- c.run(ctx) }()
	var pid int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	}, time.Minute, 10*time.Millisecond, "the check's shell never started its child")
	cancel()
	select {
	case err := <-ended:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(time.Minute):
		t.Fatal("the check did not end when its context did")
	}
	// The child is gone (or a zombie that init reaps).
	require.Eventually(t, func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH || zombie(pid) },
		time.Minute, 10*time.Millisecond, "sleep (pid %d) outlived its check", pid)
}

// zombie reports whether pid has exited but not been reaped yet.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	for i := len(b) - 1; i > 0; i-- {
		if b[i] == ')' {
			return i+2 < len(b) && b[i+2] == 'Z'
		}
	}
	return false
}

// checkLoop reports every run's result, one run at a time, and stops with
// its context.
func TestCheckLoop(t *testing.T) {
	var running, most, runs atomic.Int32
	results := make(chan error, 100)
	c := check{what: "test", run: func(ctx context.Context) error {
		n := running.Add(1)
		defer running.Add(-1)
		if n > most.Load() {
			most.Store(n)
		}
		if runs.Add(1)%2 == 0 {
			return context.Canceled
		}
		return nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		checkLoop(ctx, c, time.Millisecond, time.Minute, func(err error) {
			select {
			case results <- err:
			default:
			}
		})
	}()
	require.NoError(t, <-results)
	require.Error(t, <-results)
	require.NoError(t, <-results)
	cancel()
	<-done
	assert.Equal(t, int32(1), most.Load(), "one run at a time")
}
