package etcd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/pirlan/pir/discovery"
)

// MaxValueSize is the largest value, in bytes, a Watcher decodes; a larger
// value under a group's prefix is skipped and counted as bad. A member's
// value is a few hundred bytes; pir's announcements fit one datagram.
const MaxValueSize = 64 << 10

// DefaultPrefix is the key prefix used when a Config's Prefix is empty.
const DefaultPrefix = "/pir"

// Departure notes: the value of record.Left.
const (
	leftGoodbye = "goodbye"
	leftFailed  = "failed"
	leftExpired = "expired"
)

// record is the JSON value stored under a member's key,
// <prefix>/<group>/<id> (group and id path-escaped). Its wire form is
// documented in docs/plugins/etcd.md.
type record struct {
	// ID is the member's ID; it must match the key.
	ID string `json:"id"`
	// Group is the group's name; it must match the key.
	Group string `json:"group"`
	// HealthURI is where the member's health is probed. Required.
	HealthURI string `json:"health_uri"`
	// CommsURI is where the application is reached. Empty means the
	// same as HealthURI.
	CommsURI string `json:"comms_uri,omitempty"`
	// Meta is the member's metadata, as it announces it.
	Meta map[string]string `json:"meta,omitempty"`
	// Addr is the address the member announces from, when known
	// (MirrorConfig.Addr, or a peer's view in a departure note).
	Addr string `json:"addr,omitempty"`
	// Health is the writer's judgement of the member's health, from 0 to
	// 1. A member writing itself writes 1 once its own health probe has
	// passed; a departure note carries 0. Absent means 1.
	Health *float64 `json:"health,omitempty"`
	// Left marks a departure note: "goodbye", "failed" or "expired". A
	// Watcher treats a key holding a note as gone, with that reason; the
	// key is deleted right after the note is written.
	Left string `json:"left,omitempty"`
}

// ErrClosed is returned by Mirror.Leave after Close or Leave.
var ErrClosed = fmt.Errorf("etcd: mirror closed: %w", net.ErrClosed)

// ErrInvalidConfig wraps every problem a config's Validate reports.
var ErrInvalidConfig = errors.New("etcd: invalid config")

// errBadRecord wraps every reason a value is refused.
var errBadRecord = errors.New("etcd: bad member record")

func badf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errBadRecord}, args...)...)
}

// memberKey returns the key of member id in group under prefix.
func memberKey(prefix, group, id string) string {
	return groupPrefix(prefix, group) + url.PathEscape(id)
}

// groupPrefix returns the prefix of every member key of group, ending in
// '/'. The group name is path-escaped so that group "a" never sees the keys
// of group "a/b".
func groupPrefix(prefix, group string) string {
	return prefix + "/" + url.PathEscape(group) + "/"
}

// normPrefix fills the default and strips trailing slashes.
func normPrefix(p string) string {
	if p == "" {
		p = DefaultPrefix
	}
	return strings.TrimRight(p, "/")
}

// idFromKey returns the member ID a key names, or an error if the key is not
// a member key of the group prefix gp.
func idFromKey(gp, key string) (string, error) {
	rest, ok := strings.CutPrefix(key, gp)
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return "", badf("key %q is not <prefix>/<group>/<id>", key)
	}
	id, err := url.PathUnescape(rest)
	if err != nil {
		return "", badf("key %q: %v", key, err)
	}
	return id, nil
}

// recordOf is the record a member writes for itself.
func recordOf(group string, p discovery.Peer, addr netip.AddrPort, health float64) record {
	r := record{ID: p.ID, Group: group, Health: &health}
	if p.HealthURI != nil {
		r.HealthURI = p.HealthURI.String()
	}
	if p.CommsURI != nil {
		r.CommsURI = p.CommsURI.String()
	}
	if len(p.Meta) > 0 {
		r.Meta = make(map[string]string, len(p.Meta))
		for k, v := range p.Meta {
			r.Meta[k] = v
		}
	}
	if addr.IsValid() {
		r.Addr = addr.String()
	}
	return r
}

// encode returns the record's JSON value.
func (r record) encode() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("etcd: encode record of %q: %w", r.ID, err)
	}
	return b, nil
}

// decodeRecord decodes and checks the value stored under key, which must be
// a member key of group under the group prefix gp. Values come from the
// network: every problem is an error wrapping errBadRecord, never a panic.
func decodeRecord(gp, group, key string, value []byte) (record, error) {
	id, err := idFromKey(gp, key)
	if err != nil {
		return record{}, err
	}
	if len(value) > MaxValueSize {
		return record{}, badf("key %q: value of %d bytes exceeds %d", key, len(value), MaxValueSize)
	}
	var r record
	if err := json.Unmarshal(value, &r); err != nil {
		return record{}, badf("key %q: %v", key, err)
	}
	if err := r.check(group, id); err != nil {
		return record{}, fmt.Errorf("key %q: %w", key, err)
	}
	return r, nil
}

// check reports the first problem with r as a record of member id in group.
func (r record) check(group, id string) error {
	switch {
	case r.ID == "":
		return badf("no id")
	case r.ID != id:
		return badf("id %q does not match the key's %q", r.ID, id)
	case r.Group != group:
		return badf("group %q is not %q", r.Group, group)
	case !utf8.ValidString(r.ID) || !utf8.ValidString(r.Group):
		return badf("id or group is not UTF-8")
	}
	if _, err := parseURI(r.HealthURI); err != nil {
		return badf("health_uri: %v", err)
	}
	if r.CommsURI != "" {
		if _, err := parseURI(r.CommsURI); err != nil {
			return badf("comms_uri: %v", err)
		}
	}
	for k := range r.Meta {
		if k == "" {
			return badf("meta has an empty key")
		}
	}
	if r.Addr != "" {
		if _, err := netip.ParseAddrPort(r.Addr); err != nil {
			return badf("addr: %v", err)
		}
	}
	if r.Health != nil && !(*r.Health >= 0 && *r.Health <= 1) {
		return badf("health %v is not between 0 and 1", *r.Health)
	}
	switch r.Left {
	case "", leftGoodbye, leftFailed, leftExpired:
	default:
		return badf("left %q is not goodbye, failed or expired", r.Left)
	}
	return nil
}

// parseURI parses an absolute URI with a scheme and a host.
func parseURI(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("%q has no scheme or no host", s)
	}
	return u, nil
}

// health returns the record's health, 1 when absent.
func (r record) health() float64 {
	if r.Health == nil {
		return 1
	}
	return *r.Health
}

// reason maps a departure note to a discovery.Reason.
func (r record) reason() discovery.Reason {
	switch r.Left {
	case leftGoodbye:
		return discovery.Goodbye
	case leftFailed:
		return discovery.Failed
	default:
		return discovery.Expired
	}
}

// leftNote is the departure note for reason.
func leftNote(why discovery.Reason) string {
	switch why {
	case discovery.Goodbye:
		return leftGoodbye
	case discovery.Failed:
		return leftFailed
	default:
		return leftExpired
	}
}

// peer returns the record as a discovery.Peer. r must have passed check.
func (r record) peer() discovery.Peer {
	p := discovery.Peer{ID: r.ID}
	p.HealthURI, _ = parseURI(r.HealthURI)
	if r.CommsURI != "" {
		p.CommsURI, _ = parseURI(r.CommsURI)
	} else {
		p.CommsURI, _ = parseURI(r.HealthURI)
	}
	if len(r.Meta) > 0 {
		p.Meta = make(map[string]string, len(r.Meta))
		for k, v := range r.Meta {
			p.Meta[k] = v
		}
	}
	return p
}

// addr returns the record's address, the zero AddrPort when absent. r must
// have passed check.
func (r record) addr() netip.AddrPort {
	a, _ := netip.ParseAddrPort(r.Addr)
	return a
}

func uriString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}
