package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pirlan/pir/internal/safejson"

	"github.com/pirlan/pir/discovery"
)

// Printer writes membership events as text or JSON lines. It is safe for
// concurrent use. In text, every field that came off the network is passed
// through Printable; JSON quotes them itself.
//
// When a write fails (the reader of a pipe went away: pir watch | head -1)
// the printer writes nothing more and closes failed, so that the command
// can stop.
type Printer struct {
	mu    sync.Mutex
	w     io.Writer
	json  bool
	start time.Time // for relative timestamps; zero means wall-clock time

	err    error         // the first write error
	Failed chan struct{} // closed on the first write error; nil: not watched
}

type jsonEvent struct {
	Time    time.Time         `json:"time"`
	Event   string            `json:"event"`
	ID      string            `json:"id"`
	Health  string            `json:"health_uri,omitempty"`
	Comms   string            `json:"comms_uri,omitempty"`
	Addr    string            `json:"addr,omitempty"`
	Score   float64           `json:"health"`
	Verdict string            `json:"verdict,omitempty"`
	Reason  string            `json:"reason,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
	Group   string            `json:"group,omitempty"`
}

// NewPrinter returns a printer that reports its first write error.
func NewPrinter(w io.Writer, asJSON bool) *Printer {
	return &Printer{w: w, json: asJSON, Failed: make(chan struct{})}
}

func (p *Printer) stamp(t time.Time) string {
	if p.start.IsZero() {
		return t.Format("15:04:05.000")
	}
	return fmt.Sprintf("%+8.3fs", t.Sub(p.start).Seconds())
}

// writeLocked writes one line; p.mu is held.
func (p *Printer) writeLocked(line string) {
	if p.err != nil {
		return
	}
	if _, err := io.WriteString(p.w, line); err != nil {
		p.err = err
		if p.Failed != nil {
			close(p.Failed)
		}
	}
}

// Err returns the first write error, or nil.
func (p *Printer) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// event prints one event, prefixed by who saw it when that is not empty.
func (p *Printer) event(who string, e discovery.Event) { p.print(who, "", e) }

// GroupEvent prints one event of the named group: in text prefixed by the
// name, in JSON with a "group" field.
func (p *Printer) GroupEvent(group string, e discovery.Event) { p.print(Printable(group), group, e) }

func (p *Printer) print(who, group string, e discovery.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := e.Member
	if p.json {
		je := jsonEvent{Time: e.At, Event: e.Type.String(), ID: m.ID, Score: m.Health, Meta: m.Meta, Group: group}
		if m.HealthURI != nil {
			je.Health = m.HealthURI.String()
		}
		if m.CommsURI != nil {
			je.Comms = m.CommsURI.String()
		}
		if m.Addr.IsValid() {
			je.Addr = m.Addr.String()
		}
		if m.Verdict != 0 {
			je.Verdict = m.Verdict.String()
		}
		if e.Type == discovery.Left {
			je.Reason = e.Reason.String()
		}
		b, _ := json.Marshal(je)
		p.writeLocked(string(safejson.Printable(b)) + "\n")
		return
	}
	if who != "" {
		who += ": "
	}
	id := Printable(m.ID)
	var what string
	switch e.Type {
	case discovery.Joined:
		what = fmt.Sprintf("+ %s joined  health=%s comms=%s", id, uriText(m.HealthURI), uriText(m.CommsURI))
	case discovery.Updated:
		what = fmt.Sprintf("* %s updated health=%s comms=%s", id, uriText(m.HealthURI), uriText(m.CommsURI))
	case discovery.HealthChanged:
		what = fmt.Sprintf("~ %s health %.2f -> %.2f (%s)", id, e.Prev.Health, m.Health, m.Verdict)
	case discovery.Left:
		what = fmt.Sprintf("- %s left (%s)", id, e.Reason)
	}
	if len(m.Meta) > 0 && e.Type != discovery.Left && e.Type != discovery.HealthChanged {
		what += " meta=" + metaText(m.Meta)
	}
	p.writeLocked(fmt.Sprintf("%s %s%s\n", p.stamp(e.At), who, what))
}

// uriText is a URI as text, escaped; <nil> for none, as fmt prints it.
func uriText(u *url.URL) string {
	if u == nil {
		return "<nil>"
	}
	return Printable(u.String())
}

// metaText prints metadata as fmt prints a map (map[k:v k2:v2], sorted by
// key), every key and value escaped.
func metaText(meta map[string]string) string {
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("map[")
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(Printable(k))
		b.WriteByte(':')
		b.WriteString(Printable(meta[k]))
	}
	b.WriteByte(']')
	return b.String()
}

// Say prints a line of narration (text mode only). Its arguments are pir's
// own, or escaped by the caller.
func (p *Printer) Say(format string, args ...any) {
	if p.json {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writeLocked(fmt.Sprintf("%s %s\n", p.stamp(time.Now()), fmt.Sprintf(format, args...)))
}
