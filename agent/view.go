package agent

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pirlan/pir/internal/safejson"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/score"
)

// view is the agent's copy of one group's membership, fed by the group's
// listener. The agent's mu guards it.
type view struct {
	name    string
	members map[string]discovery.Member
	index   uint64        // the agent's seq at the group's latest event; 0 before any
	changed chan struct{} // closed and replaced on every event

	// ring holds the most recent events: ring[head] is the oldest once
	// the ring is full.
	ring    []*record
	max     int
	head    int
	evicted uint64 // seq of the newest event pushed out of the ring

	dns *dnsView // the DNS answers' inputs, built on demand; nil after a change

	remove func() // removes the agent's listener from the group
}

// record is one event as the streams send it, encoded once.
type record struct {
	seq   uint64
	group *view
	typ   string
	data  []byte // one JSON object, one line
}

func newView(name string, maxEvents int) *view {
	return &view{
		name:    name,
		members: make(map[string]discovery.Member),
		changed: make(chan struct{}),
		max:     maxEvents,
	}
}

// apply records event e with sequence number seq.
func (v *view) apply(seq uint64, e discovery.Event) *record {
	if e.Type == discovery.Left {
		delete(v.members, e.Member.ID)
	} else {
		v.members[e.Member.ID] = e.Member
	}
	v.index = seq
	v.dns = nil
	close(v.changed)
	v.changed = make(chan struct{})
	rec := &record{seq: seq, group: v, typ: e.Type.String(), data: eventJSON(v.name, e, false)}
	if len(v.ring) < v.max {
		v.ring = append(v.ring, rec)
	} else {
		v.evicted = v.ring[v.head].seq
		v.ring[v.head] = rec
		v.head = (v.head + 1) % v.max
	}
	return rec
}

// since returns the kept events after seq, oldest first, and whether they
// are all that happened after seq (false when some were pushed out).
func (v *view) since(seq uint64) ([]*record, bool) {
	if seq < v.evicted {
		return nil, false
	}
	var out []*record
	for i := range v.ring {
		r := v.ring[(v.head+i)%len(v.ring)]
		if r.seq > seq {
			out = append(out, r)
		}
	}
	return out, true
}

// snapshot returns the current members as joined events with
// "snapshot":true, sorted by ID, all with sequence number seq.
func (v *view) snapshot(seq uint64) []*record {
	out := make([]*record, 0, len(v.members))
	for _, m := range v.sorted() {
		e := discovery.Event{Type: discovery.Joined, Member: m, At: m.Joined}
		out = append(out, &record{seq: seq, group: v, typ: "joined", data: eventJSON(v.name, e, true)})
	}
	return out
}

// sorted returns the members sorted by ID.
func (v *view) sorted() []discovery.Member {
	ms := make([]discovery.Member, 0, len(v.members))
	for _, m := range v.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b discovery.Member) int { return strings.Compare(a.ID, b.ID) })
	return ms
}

func healthy(m discovery.Member) bool { return m.Verdict == score.Healthy }

// jsonTime is a time as RFC 3339 with milliseconds, in UTC.
type jsonTime time.Time

const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func (t jsonTime) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("null"), nil
	}
	return []byte(strconv.Quote(tt.UTC().Format(timeFormat))), nil
}

// memberJSON is a member as /v1/groups/{name}/members lists it: the names
// `pir watch -json` uses.
type memberJSON struct {
	ID        string            `json:"id"`
	Health    string            `json:"health_uri,omitempty"`
	Comms     string            `json:"comms_uri,omitempty"`
	Addr      string            `json:"addr,omitempty"`
	Score     float64           `json:"health"`
	Verdict   string            `json:"verdict,omitempty"`
	Meta      map[string]string `json:"meta,omitempty"`
	Joined    jsonTime          `json:"joined"`
	LastHeard jsonTime          `json:"last_heard"`
}

// eventJSONFields is an event as the streams send it: a `pir watch -json`
// line plus the group (and snapshot for the opening list).
type eventJSONFields struct {
	Time     jsonTime          `json:"time"`
	Event    string            `json:"event"`
	ID       string            `json:"id"`
	Health   string            `json:"health_uri,omitempty"`
	Comms    string            `json:"comms_uri,omitempty"`
	Addr     string            `json:"addr,omitempty"`
	Score    float64           `json:"health"`
	Verdict  string            `json:"verdict,omitempty"`
	Reason   string            `json:"reason,omitempty"`
	Meta     map[string]string `json:"meta,omitempty"`
	Group    string            `json:"group"`
	Snapshot bool              `json:"snapshot,omitempty"`
}

func toMemberJSON(m discovery.Member) memberJSON {
	j := memberJSON{ID: m.ID, Score: m.Health, Meta: m.Meta, Joined: jsonTime(m.Joined), LastHeard: jsonTime(m.LastSeen)}
	if m.HealthURI != nil {
		j.Health = m.HealthURI.String()
	}
	if m.CommsURI != nil {
		j.Comms = m.CommsURI.String()
	}
	if m.Addr.IsValid() {
		j.Addr = m.Addr.String()
	}
	if m.Verdict != 0 {
		j.Verdict = m.Verdict.String()
	}
	return j
}

func eventJSON(group string, e discovery.Event, snapshot bool) []byte {
	m := toMemberJSON(e.Member)
	j := eventJSONFields{Time: jsonTime(e.At), Event: e.Type.String(), ID: m.ID, Health: m.Health,
		Comms: m.Comms, Addr: m.Addr, Score: m.Score, Verdict: m.Verdict, Meta: m.Meta,
		Group: group, Snapshot: snapshot}
	if e.Type == discovery.Left {
		j.Reason = e.Reason.String()
		if e.Reason == 0 {
			j.Reason = "stopped" // the watched group stopped (Agent.stopped)
		}
	}
	return marshal(j)
}

// marshal encodes v as JSON with <, > and & escaped (encoding/json's
// default) and every rune that does not print escaped too (see
// safejson.Printable). v's types never fail to encode.
func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"error":"encoding failed"}`)
	}
	return safejson.Printable(b)
}
