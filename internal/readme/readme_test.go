package readme

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/netlab"
)

func TestMain(m *testing.M) { netlab.Main(m) }

// usage returns the first go code block after the "## Usage" heading of
// README.md.
func usage(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	s := string(b)
	i := strings.Index(s, "\n## Usage\n")
	require.GreaterOrEqual(t, i, 0, "README.md has no ## Usage section")
	s = s[i:]
	start := strings.Index(s, "\n```go\n")
	require.GreaterOrEqual(t, start, 0, "README.md's Usage section has no go block")
	s = s[start+len("\n```go\n"):]
	end := strings.Index(s, "\n```\n")
	require.GreaterOrEqual(t, end, 0, "README.md's Usage go block is not closed")
	return s[:end+1]
}

// build writes the Usage program into a directory of this module, so that
// it builds against this checkout's packages exactly as a user's program
// would against a release, vets it, and builds it; it returns the binary.
func build(t *testing.T) string {
	t.Helper()
	src := usage(t)
	require.True(t, strings.HasPrefix(src, "package main\n"), "the Usage block is a whole program: it starts with package main")
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the go command builds the README's program")
	// A directory named with a leading underscore is part of the module
	// but ignored by ./... patterns.
	dir, err := os.MkdirTemp(".", "_usage")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644))
	bin := filepath.Join(t.TempDir(), "usage")
	// Inside the test's network namespace there is no network: build only
	// from the module cache, which the test itself was built from.
	env := append(os.Environ(), "GOPROXY=off")
	for _, args := range [][]string{{"vet", "./" + dir}, {"build", "-o", bin, "./" + dir}} {
		cmd := exec.Command(goBin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go %s of README.md's Usage program:\n%s\n--- the program:\n%s", strings.Join(args, " "), out, src)
	}
	return bin
}

func TestUsageBuilds(t *testing.T) {
	build(t)
}

// member is one running copy of the README's program.
type member struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	next  chan struct{} // signalled on each new line
	done  chan struct{} // closed when stdout ends
}

func start(t *testing.T, bin string) *member {
	t.Helper()
	m := &member{cmd: exec.Command(bin), next: make(chan struct{}, 1), done: make(chan struct{})}
	m.cmd.Stderr = &tWriter{t: t}
	out, err := m.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, m.cmd.Start())
	t.Cleanup(func() {
		_ = m.cmd.Process.Kill()
		<-m.done // no t.Log after the test
		_ = m.cmd.Wait()
	})
	go func() {
		defer close(m.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			t.Log(sc.Text())
			m.mu.Lock()
			m.lines = append(m.lines, sc.Text())
			m.mu.Unlock()
			select {
			case m.next <- struct{}{}:
			default:
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	return m
}

// wait waits for a line matching re and returns its submatches. Its bound
// is only against a hang: it is normally reached in milliseconds.
func (m *member) wait(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	for seen := 0; ; {
		m.mu.Lock()
		lines := m.lines[seen:]
		seen = len(m.lines)
		m.mu.Unlock()
		for _, l := range lines {
			if sub := re.FindStringSubmatch(l); sub != nil {
				return sub
			}
		}
		select {
		case <-m.next:
		case <-m.done:
			m.mu.Lock()
			more := len(m.lines) > seen
			m.mu.Unlock()
			if !more {
				t.Fatalf("the program ended without printing a line matching %s", re)
			}
		case <-timer.C:
			t.Fatalf("no line matching %s within a minute", re)
		}
	}
}

// TestUsageRuns runs two copies of the README's program, as a user would in
// two terminals, inside the test's private network namespace: each prints
// its ID and then the other joining; on Ctrl-C (SIGINT) each leaves with a
// goodbye that the other reports, and exits 0.
func TestUsageRuns(t *testing.T) {
	netlab.Require(t)
	bin := build(t)
	joined := regexp.MustCompile(`^joined abc as (\S+)$`)
	a := start(t, bin)
	idA := a.wait(t, joined)[1]
	b := start(t, bin)
	idB := b.wait(t, joined)[1]
	require.NotEqual(t, idA, idB)

	event := func(what, id string) *regexp.Regexp {
		return regexp.MustCompile(`^Membership change event has occurred: ` + what + ` ` + regexp.QuoteMeta(id) + `\b`)
	}
	a.wait(t, event("joined", idB))
	b.wait(t, event("joined", idA))

	require.NoError(t, b.cmd.Process.Signal(syscall.SIGINT))
	a.wait(t, regexp.MustCompile(`^Membership change event has occurred: left `+regexp.QuoteMeta(idB)+` \(goodbye\)$`))
	<-b.done
	assert.NoError(t, b.cmd.Wait(), "the program exits 0 on Ctrl-C")

	require.NoError(t, a.cmd.Process.Signal(syscall.SIGINT))
	<-a.done
	assert.NoError(t, a.cmd.Wait())
}

type tWriter struct{ t *testing.T }

func (w *tWriter) Write(p []byte) (int, error) {
	w.t.Log("stderr: " + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
