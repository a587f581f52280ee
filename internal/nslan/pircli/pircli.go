// Package pircli drives the pir command in a lab: it builds cmd/pir,
// starts "pir join" and "pir watch" with -json on a lab host's eth0, and
// parses and waits for the events they print, one JSON object a line. The
// end-to-end tests and the lab benchmark share it.
package pircli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pirlan/pir/internal/nslan"
)

// Module is the path of the module whose cmd/pir Build builds.
const Module = "github.com/pirlan/pir"

// ModuleRoot returns the root directory of Module, looking in dir and its
// parents for its go.mod.
func ModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && modulePath(b) == Module {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of %s in %s or its parents", Module, dir)
		}
	}
}

func modulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// Build builds cmd/pir of the module at root into dir and returns the
// binary's path. With race the binary has the race detector; its
// processes then report races on stderr (see Peer.CheckStderr). Without
// race it is static (CGO_ENABLED=0), as a small deployment builds it: no
// C library is mapped, which takes 2 MiB off each process's RSS
// (docs/performance.md). It runs the go command found in PATH (go test
// puts its own first).
func Build(ctx context.Context, root, dir string, race bool) (string, error) {
	return build(ctx, root, dir, "pir", race)
}

// BuildAgent builds cmd/pir-agent as Build builds cmd/pir.
func BuildAgent(ctx context.Context, root, dir string, race bool) (string, error) {
	return build(ctx, root, dir, "pir-agent", race)
}

func build(ctx context.Context, root, dir, name string, race bool) (string, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building %s: %w", name, err)
	}
	out := filepath.Join(dir, name)
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, goCmd, append(args, "./cmd/"+name)...)
	cmd.Dir = root
	if !race {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s ./cmd/%s: %w: %s", strings.Join(args, " "), name, err, bytes.TrimSpace(b))
	}
	return out, nil
}

// Event is one line of "pir join -json" or "pir watch -json" output.
type Event struct {
	Time      time.Time         `json:"time"`
	Event     string            `json:"event"` // joined, health, updated or left
	ID        string            `json:"id"`
	HealthURI string            `json:"health_uri"`
	CommsURI  string            `json:"comms_uri"`
	Addr      string            `json:"addr"`
	Health    float64           `json:"health"`
	Verdict   string            `json:"verdict"`
	Reason    string            `json:"reason"` // for left: goodbye, failed or expired
	Meta      map[string]string `json:"meta"`

	// Line is the line the event came from, with the time it was read.
	Line nslan.Line `json:"-"`
	// Index is the line's index in the process's output.
	Index int `json:"-"`
}

// Event types and reasons as pir prints them.
const (
	Joined  = "joined"
	Health  = "health"
	Updated = "updated"
	Left    = "left"

	Goodbye = "goodbye"
	Failed  = "failed"
	Expired = "expired"
)

// Parse parses one output line. It fails on a line that is not a JSON
// object with a known event type and an ID, or with a reason on an event
// other than left. Fields it does not know are ignored.
func Parse(l nslan.Line) (Event, error) {
	var e Event
	if err := json.Unmarshal([]byte(l.Text), &e); err != nil {
		return Event{}, fmt.Errorf("line %q: %w", l.Text, err)
	}
	switch e.Event {
	case Joined, Health, Updated, Left:
	default:
		return Event{}, fmt.Errorf("line %q: unknown event %q", l.Text, e.Event)
	}
	if e.ID == "" {
		return Event{}, fmt.Errorf("line %q: no id", l.Text)
	}
	if (e.Event == Left) != (e.Reason != "") {
		return Event{}, fmt.Errorf("line %q: a reason belongs to left events only", l.Text)
	}
	e.Line = l
	return e, nil
}

// Peer is a running "pir join" or "pir watch".
type Peer struct {
	*nslan.Proc
	// ID is the member's ID (-id), empty for a watcher.
	ID string
}

// Join starts "pir join -json -iface eth0 -id ID args..." on h, with the
// pir binary at pir.
func Join(h *nslan.Host, pir, id string, args ...string) (*Peer, error) {
	p, err := start(h, pir, append([]string{"join", "-json", "-iface", "eth0", "-id", id}, args...))
	if err != nil {
		return nil, err
	}
	return &Peer{Proc: p, ID: id}, nil
}

// Watch starts "pir watch -json -iface eth0 args..." on h.
func Watch(h *nslan.Host, pir string, args ...string) (*Peer, error) {
	p, err := start(h, pir, append([]string{"watch", "-json", "-iface", "eth0"}, args...))
	if err != nil {
		return nil, err
	}
	return &Peer{Proc: p}, nil
}

func start(h *nslan.Host, pir string, args []string) (*nslan.Proc, error) {
	cmd := h.Command(context.Background(), pir, args...)
	// A race-enabled binary would otherwise wait a second before exiting.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	return h.StartCommand(cmd)
}

// Name describes the peer for messages: its ID and host.
func (p *Peer) Name() string {
	if p.ID == "" {
		return "watcher on " + p.Host().Name
	}
	return p.ID + " on " + p.Host().Name
}

// WaitEvent waits for the first event, on a line at index from or later,
// for which match is true. Lines that are not events fail it.
func (p *Peer) WaitEvent(ctx context.Context, from int, match func(Event) bool) (Event, error) {
	var bad error
	var found Event
	i, _, err := p.WaitLine(ctx, from, func(l nslan.Line) bool {
		e, err := Parse(l)
		if err != nil {
			bad = err
			return true
		}
		if match(e) {
			found = e
			return true
		}
		return false
	})
	if err != nil {
		return Event{}, fmt.Errorf("%s: %w", p.Name(), err)
	}
	if bad != nil {
		return Event{}, fmt.Errorf("%s: %w", p.Name(), bad)
	}
	found.Index = i
	return found, nil
}

// Events returns the events printed so far; it fails on a line that is not
// an event.
func (p *Peer) Events() ([]Event, error) {
	var events []Event
	var errs []error
	for i, l := range p.Lines() {
		e, err := Parse(l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e.Index = i
		events = append(events, e)
	}
	if err := errors.Join(errs...); err != nil {
		return events, fmt.Errorf("%s: %w", p.Name(), err)
	}
	return events, nil
}

// Is returns a match for WaitEvent: an event of type typ about member id,
// with one of reasons if any are given.
func Is(typ, id string, reasons ...string) func(Event) bool {
	return func(e Event) bool {
		if e.Event != typ || e.ID != id {
			return false
		}
		if len(reasons) == 0 {
			return true
		}
		for _, r := range reasons {
			if e.Reason == r {
				return true
			}
		}
		return false
	}
}

// CheckStderr reports what a race-enabled pir wrote about data races, or
// about a panic, on stderr.
func (p *Peer) CheckStderr() error {
	s := p.Stderr()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
		if strings.Contains(s, bad) {
			return fmt.Errorf("%s: stderr has %q:\n%s", p.Name(), bad, s)
		}
	}
	return nil
}
