package mcast

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// Membership keeps one socket joined to one multicast group on the links
// Choose picks among the host's interfaces, as Update finds them. Its
// methods are safe for concurrent use.
type Membership struct {
	sock  *Socket
	group netip.Addr
	names []string
	log   hclog.Logger

	updateMu sync.Mutex // serialises Update
	mu       sync.Mutex // guards links
	links    map[int]Interface
}

// NewMembership returns a Membership of s in group, on the interfaces
// named by names (all suitable ones when empty, see Choose); it joins
// nothing before the first Update. log receives a line per link added or
// dropped; nil means no logging.
func NewMembership(s *Socket, group netip.Addr, names []string, log hclog.Logger) *Membership {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Membership{
		sock: s, group: group, names: slices.Clone(names), log: log,
		links: make(map[int]Interface),
	}
}

// Update joins the group on the chosen interfaces of ifs where it has not
// joined it yet, leaves it on the links that went away (or whose index
// now names another interface), and records the current state of the
// others. A join that fails is logged at Debug and tried again at the next
// Update. changed reports whether a link was added or dropped, or the
// addresses of one changed.
func (m *Membership) Update(ifs []Interface) (changed bool) {
	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	want := make(map[int]Interface)
	for _, it := range Choose(ifs, m.names, m.sock.v6) {
		want[it.Index] = it
	}
	// Only Update changes links, under updateMu, so reading it here
	// without mu is safe.
	for idx, cur := range m.links {
		if w, ok := want[idx]; ok && w.Name == cur.Name {
			continue
		}
		// The kernel forgets the membership of an interface that is gone,
		// so failing to leave it is expected then.
		if err := m.sock.LeaveGroup(&cur.Interface, m.group); err != nil {
			m.log.Debug("leaving the group", "interface", cur.Name, "error", err)
		}
		m.mu.Lock()
		delete(m.links, idx)
		m.mu.Unlock()
		m.log.Info("interface dropped", "interface", cur.Name)
		changed = true
	}
	for idx, w := range want {
		if cur, ok := m.links[idx]; ok {
			if slices.Equal(cur.Addrs, w.Addrs) && cur.Flags == w.Flags && cur.MTU == w.MTU {
				continue
			}
			m.mu.Lock()
			m.links[idx] = w
			m.mu.Unlock()
			if !slices.Equal(cur.Addrs, w.Addrs) {
				changed = true
				m.log.Info("interface address changed", "interface", w.Name, "addr", w.Addr(m.sock.v6))
			}
			continue
		}
		if err := m.sock.JoinGroup(&w.Interface, m.group); err != nil {
			m.log.Debug("joining the group", "interface", w.Name, "error", err)
			continue // tried again at the next Update
		}
		m.mu.Lock()
		m.links[idx] = w
		m.mu.Unlock()
		m.log.Info("interface added", "interface", w.Name, "addr", w.Addr(m.sock.v6))
		changed = true
	}
	return changed
}

// Links returns the links the group is joined on, by interface index.
func (m *Membership) Links() []Interface {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Interface, 0, len(m.links))
	for _, l := range m.links {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Interface) int { return a.Index - b.Index })
	return out
}

// Link returns the link of interface index, if the group is joined on it.
func (m *Membership) Link(index int) (Interface, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.links[index]
	return l, ok
}

// IndexOf returns the index of the link named name, if the group is
// joined on it: the lookup ZoneIndex takes.
func (m *Membership) IndexOf(name string) (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.links {
		if l.Name == name {
			return l.Index, true
		}
	}
	return 0, false
}
