package nslan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrExited is returned by Proc.WaitLine when the process exits before
// writing the line waited for.
var ErrExited = errors.New("lab: process exited")

// waitDelay bounds how long Wait waits for a killed process's output
// pipes to close (a grandchild may hold them).
const waitDelay = 2 * time.Second

// maxStderr is how much of a process's stderr a Proc keeps: the end.
const maxStderr = 64 << 10

// Command returns a command that runs the program name with args in h's
// network namespace, through nsenter --net, which execs it: the process is
// the program itself. The caller may set Env, Dir, Stdin and so on, runs
// and waits for it; ctx kills it as exec.CommandContext does. The lab does
// not track it: use StartCommand for that.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	nsArgs := append([]string{"--net=" + filepath.Join(netnsDir, h.NS), "--", name}, args...)
	cmd := exec.CommandContext(ctx, h.lab.tools.nsenter, nsArgs...)
	setDeathSignal(cmd)
	return cmd
}

// Start starts the program name with args in h's namespace and returns it
// as a Proc, whose stdout lines can be waited for. Close kills it if it
// still runs.
func (h *Host) Start(name string, args ...string) (*Proc, error) {
	return h.StartCommand(h.Command(context.Background(), name, args...))
}

// StartCommand starts cmd, which h.Command made and whose Stdout and
// Stderr are unset, as a Proc. The caller may have set its Env, Dir or
// Stdin. It starts the program directly in h's namespace, without nsenter
// (see startIn), so that Proc.Started times the program alone. Close kills
// it if it still runs.
func (h *Host) StartCommand(cmd *exec.Cmd) (*Proc, error) {
	if err := h.lab.check(h); err != nil {
		return nil, err
	}
	// A command from elsewhere would run in this process's namespace.
	if len(cmd.Args) < 4 || cmd.Args[1] != "--net="+filepath.Join(netnsDir, h.NS) || cmd.Args[2] != "--" {
		return nil, fmt.Errorf("lab: StartCommand on %s: the command is not one h.Command made for this host", h.Name)
	}
	if cmd.Stdout != nil || cmd.Stderr != nil {
		return nil, errors.New("lab: StartCommand: Stdout and Stderr must be unset")
	}
	p := &Proc{host: h, cmd: cmd, done: make(chan struct{}), grew: make(chan struct{})}
	cmd.Stdout = (*stdoutWriter)(p)
	cmd.Stderr = &p.stderr
	cmd.WaitDelay = waitDelay

	l := h.lab
	l.mu.Lock()
	if l.procs == nil {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	// Run the program itself, not nsenter, in the host's namespace.
	ns := strings.TrimPrefix(cmd.Args[1], "--net=")
	cmd.Path, cmd.Args, cmd.Err = cmd.Args[3], cmd.Args[3:], nil
	if filepath.Base(cmd.Path) == cmd.Path {
		if cmd.Path, cmd.Err = exec.LookPath(cmd.Path); cmd.Err != nil {
			l.mu.Unlock()
			return nil, fmt.Errorf("lab: starting %s on %s: %w", strings.Join(cmd.Args, " "), h.Name, cmd.Err)
		}
	}
	p.started = time.Now()
	if err := startIn(cmd, ns); err != nil {
		l.mu.Unlock()
		return nil, fmt.Errorf("lab: starting %s on %s: %w", strings.Join(cmd.Args, " "), h.Name, err)
	}
	l.procs[p] = struct{}{}
	l.mu.Unlock()
	l.logf("lab: %s: started pid %d: %s", h.Name, cmd.Process.Pid, strings.Join(cmd.Args, " "))

	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if len(p.partial) > 0 {
			p.addLine(string(p.partial), time.Now())
			p.partial = nil
		}
		p.err = err
		p.mu.Unlock()
		l.mu.Lock()
		delete(l.procs, p)
		l.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Line is one line a process wrote to its stdout.
type Line struct {
	// Text is the line without its newline.
	Text string
	// At is when the lab read it, by this machine's clock: the process
	// wrote it a little earlier.
	At time.Time
}

// Proc is a process started in a host's namespace. Its methods are safe for
// concurrent use.
type Proc struct {
	host    *Host
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{} // closed when the process has exited and err is set
	stderr  tail

	mu      sync.Mutex
	lines   []Line
	partial []byte        // an unfinished line
	grew    chan struct{} // closed, and replaced, when a line arrives
	err     error         // the exit error
}

// Host returns the host the process runs on.
func (p *Proc) Host() *Host { return p.host }

// Pid returns the process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Started returns the time just before the process was started.
func (p *Proc) Started() time.Time { return p.started }

// Lines returns the lines the process has written to stdout so far.
func (p *Proc) Lines() []Line {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lines)
}

// Len returns the number of lines the process has written to stdout so
// far: the index the next line will have.
func (p *Proc) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// WaitLine waits for the first line, at index from or later, for which
// match is true, and returns its index and the line. It fails with
// ErrExited if the process exits first, or with ctx's error. match runs in
// the caller's goroutine.
func (p *Proc) WaitLine(ctx context.Context, from int, match func(Line) bool) (int, Line, error) {
	from = max(from, 0)
	for {
		p.mu.Lock()
		lines, grew := p.lines, p.grew
		p.mu.Unlock()
		for i := from; i < len(lines); i++ {
			if match(lines[i]) {
				return i, lines[i], nil
			}
		}
		from = max(from, len(lines))
		select {
		case <-grew:
			continue
		case <-p.done:
			if p.Len() > from {
				continue // lines that came before the exit
			}
			return -1, Line{}, fmt.Errorf("%s on %s: %w", p.name(), p.host.Name, p.exitError())
		case <-ctx.Done():
			return -1, Line{}, fmt.Errorf("%s on %s: waiting for a line: %w", p.name(), p.host.Name, ctx.Err())
		}
	}
}

// Interrupt sends the process SIGINT.
func (p *Proc) Interrupt() error {
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		return fmt.Errorf("lab: interrupting %s on %s: %w", p.name(), p.host.Name, err)
	}
	return nil
}

// Kill sends the process SIGKILL: it dies at once, saying nothing.
func (p *Proc) Kill() error {
	if err := p.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("lab: killing %s on %s: %w", p.name(), p.host.Name, err)
	}
	return nil
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit error (nil for
// status 0, an *exec.ExitError otherwise), or ctx's error.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("%s on %s: waiting for exit: %w", p.name(), p.host.Name, ctx.Err())
	}
}

// Stderr returns what the process has written to stderr (the last 64 KiB).
func (p *Proc) Stderr() string { return p.stderr.String() }

func (p *Proc) name() string { return filepath.Base(p.cmd.Args[0]) }

func (p *Proc) exitError() error {
	p.mu.Lock()
	err := p.err
	p.mu.Unlock()
	msg := "status 0"
	if err != nil {
		msg = err.Error()
	}
	if s := strings.TrimSpace(p.Stderr()); s != "" {
		msg += "; stderr: " + s
	}
	return fmt.Errorf("%w (%s)", ErrExited, msg)
}

// addLine appends a line; p.mu is held.
func (p *Proc) addLine(text string, at time.Time) {
	p.lines = append(p.lines, Line{Text: text, At: at})
	close(p.grew)
	p.grew = make(chan struct{})
}

// stdoutWriter splits a process's stdout into lines.
type stdoutWriter Proc

func (w *stdoutWriter) Write(b []byte) (int, error) {
	p := (*Proc)(w)
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	rest := b
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		line := rest[:i]
		if len(p.partial) > 0 {
			line = append(p.partial, line...)
			p.partial = nil
		}
		p.addLine(string(bytes.TrimSuffix(line, []byte("\r"))), now)
		rest = rest[i+1:]
	}
	p.partial = append(p.partial, rest...)
	return len(b), nil
}

// tail keeps the last maxStderr bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - maxStderr; over > 0 {
		t.buf = slices.Clone(t.buf[over:])
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
