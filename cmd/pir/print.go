package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pirlan/pir/discovery"
)

// printer writes membership events as text or JSON lines. It is safe for
// concurrent use.
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	json  bool
	start time.Time // for relative timestamps; zero means wall-clock time
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
}

func (p *printer) stamp(t time.Time) string {
	if p.start.IsZero() {
		return t.Format("15:04:05.000")
	}
	return fmt.Sprintf("%+8.3fs", t.Sub(p.start).Seconds())
}

// event prints one event, prefixed by who saw it when that is not empty.
func (p *printer) event(who string, e discovery.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := e.Member
	if p.json {
		je := jsonEvent{Time: e.At, Event: e.Type.String(), ID: m.ID, Score: m.Health, Meta: m.Meta}
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
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	if who != "" {
		who += ": "
	}
	var what string
	switch e.Type {
	case discovery.Joined:
		what = fmt.Sprintf("+ %s joined  health=%s comms=%s", m.ID, m.HealthURI, m.CommsURI)
	case discovery.Updated:
		what = fmt.Sprintf("* %s updated health=%s comms=%s", m.ID, m.HealthURI, m.CommsURI)
	case discovery.HealthChanged:
		what = fmt.Sprintf("~ %s health %.2f -> %.2f (%s)", m.ID, e.Prev.Health, m.Health, m.Verdict)
	case discovery.Left:
		what = fmt.Sprintf("- %s left (%s)", m.ID, e.Reason)
	}
	if len(m.Meta) > 0 && e.Type != discovery.Left && e.Type != discovery.HealthChanged {
		what += fmt.Sprintf(" meta=%v", m.Meta)
	}
	fmt.Fprintf(p.w, "%s %s%s\n", p.stamp(e.At), who, what)
}

// say prints a line of narration (text mode only).
func (p *printer) say(format string, args ...any) {
	if p.json {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s %s\n", p.stamp(time.Now()), fmt.Sprintf(format, args...))
}
