// Package etcdtest runs a real etcd server for tests: the etcd binary found
// on PATH (Debian's etcd-server package installs /usr/bin/etcd), listening
// on 127.0.0.1 only, with its data in the test's temporary directory. It
// also has a TCP proxy whose connections a test can cut, to disconnect one
// client from the server while others stay connected.
package etcdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Server is an etcd server process started by Start.
type Server struct {
	// Endpoint is the client URL, http://127.0.0.1:port.
	Endpoint string

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	out  *SyncBuffer
}

// Binary returns the etcd binary's path. If there is none, it skips t, or
// fails it when the environment variable CI is set, so that CI never passes
// without running the etcd tests.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("etcd")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/etcd"); serr == nil {
			path, err = "/usr/bin/etcd", nil
		}
	}
	if err != nil {
		msg := "etcd not found on PATH or at /usr/bin/etcd: install it (Debian: apt-get install etcd-server; ./test.sh does) to run the etcd plugin's tests"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set, so this is a failure)")
		}
		t.Skip(msg)
	}
	return path
}

// Start starts an etcd server on loopback ports, waits until it serves and
// stops it (SIGKILL, then waits) when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	var lastErr error
	for range 3 { // a free port may be taken between picking and binding
		s, err := start(bin, t.TempDir())
		if err == nil {
			t.Cleanup(s.Kill)
			return s
		}
		lastErr = err
	}
	t.Fatalf("start etcd: %v", lastErr)
	return nil
}

func start(bin, dir string) (*Server, error) {
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	pport, err := freePort()
	if err != nil {
		return nil, err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", cport)
	peer := fmt.Sprintf("http://127.0.0.1:%d", pport)
	cmd := exec.Command(bin,
		"--name", "test",
		"--data-dir", dir+"/data",
		"--listen-client-urls", client,
		"--advertise-client-urls", client,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test="+peer,
		"--initial-cluster-state", "new",
		// A fast election: the server is ready sooner, and leases may be as
		// short as 1 s (etcd's minimum TTL is 1.5 election timeouts).
		"--heartbeat-interval", "50",
		"--election-timeout", "500",
		"--logger", "zap",
		"--log-level", "warn",
	)
	cmd.Env = env()
	out := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	setSysProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	s := &Server{Endpoint: client, cmd: cmd, done: make(chan struct{}), out: out}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(30 * time.Second); err != nil {
		s.Kill()
		return nil, fmt.Errorf("%w; etcd's output:\n%s", err, out.String())
	}
	return s, nil
}

// env is the environment without ETCD_* variables (etcd reads its flags
// from them), plus ETCD_UNSUPPORTED_ARCH on architectures etcd 3.4 refuses
// to run on without it (it supports amd64 and ppc64le; arm64 needs it).
func env() []string {
	var e []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			e = append(e, kv)
		}
	}
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "ppc64le" {
		e = append(e, "ETCD_UNSUPPORTED_ARCH="+runtime.GOARCH)
	}
	return e
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls the server's /health until it answers healthy.
func (s *Server) waitReady(within time.Duration) error {
	deadline := time.Now().Add(within)
	hc := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-s.done:
			return errors.New("etcd exited before it was ready")
		default:
		}
		resp, err := hc.Get(s.Endpoint + "/health")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"true"`)) {
				return nil
			}
			err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd not ready at %s after %v: %w", s.Endpoint, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill stops the server at once (SIGKILL) and waits for it to exit. It is
// idempotent.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Output returns what the server has logged.
func (s *Server) Output() string { return s.out.String() }

// Client returns a client of endpoint (the Server's, or a Proxy's), closed
// when t ends. It logs nothing, and reconnects within half a second of a
// cut connection coming back.
func Client(t testing.TB, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := NewClient(endpoint)
	if err != nil {
		t.Fatalf("etcd client of %s: %v", endpoint, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// NewClient is Client without a testing.TB: the caller closes it.
func NewClient(endpoint string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
}

// Compact compacts the server's history up to its current revision.
func Compact(ctx context.Context, cli *clientv3.Client) (int64, error) {
	resp, err := cli.Get(ctx, "compact-probe")
	if err != nil {
		return 0, err
	}
	rev := resp.Header.Revision
	_, err = cli.Compact(ctx, rev, clientv3.WithCompactPhysical())
	return rev, err
}

// Proxy forwards TCP connections from a loopback port to a target, and can
// cut them all (SetDown), so that a test can disconnect a client.
type Proxy struct {
	// Endpoint is http://127.0.0.1:port, for Client.
	Endpoint string

	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	cuts  int
}

// NewProxy starts a proxy to target (host:port, or an http:// URL) and
// closes it when t ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &Proxy{Endpoint: "http://" + ln.Addr().String(), ln: ln, target: strings.TrimPrefix(target, "http://"), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer p.untrack(c)
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil || !p.track(up) {
		if up != nil {
			up.Close()
		}
		return
	}
	defer p.untrack(up)
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
	}
	go pipe(up, c)
	go pipe(c, up)
	wg.Wait()
}

// SetDown cuts every connection and refuses new ones (true), or accepts
// them again (false).
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	var cut []net.Conn
	if down {
		for c := range p.conns {
			cut = append(cut, c)
		}
		p.cuts += len(cut)
	}
	p.mu.Unlock()
	for _, c := range cut {
		c.Close()
	}
}

// Cuts returns how many connections SetDown(true) has cut.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// Close stops the proxy and waits for its goroutines.
func (p *Proxy) Close() {
	p.ln.Close()
	p.SetDown(true)
	p.wg.Wait()
}

// SyncBuffer is a bytes.Buffer safe for concurrent use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// StartProcess starts an etcd server as Start does, for a caller without a
// testing.TB (an Example): its data goes under dir, and the caller stops it
// with Kill. It fails when no etcd binary is found.
func StartProcess(dir string) (*Server, error) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/etcd"); serr != nil {
			return nil, errors.New("etcd not found on PATH or at /usr/bin/etcd: install it (Debian: apt-get install etcd-server; ./test.sh does)")
		}
		bin = "/usr/bin/etcd"
	}
	var lastErr error
	for i := range 3 { // a free port may be taken between picking and binding
		s, err := start(bin, fmt.Sprintf("%s/%d", dir, i))
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("start etcd: %w", lastErr)
}
