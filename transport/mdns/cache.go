package mdns

import (
	"cmp"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

// maxCache caps the records a Conn caches, so that a flood of responses
// cannot grow it without bound. Only records of the browsed service type
// and the addresses of its instances' hosts are cached at all.
const maxCache = 4096

// The largest TTLs a received record keeps (RFC 6762 §10 gives these as
// the normal values): 120 s for records whose name or rdata is a host name
// (SRV, A, AAAA), 75 minutes for the others (PTR, TXT). A larger TTL is
// cut to these, so that a record cannot pin a cache entry for longer.
const (
	maxHostTTL  = 120 * time.Second
	maxOtherTTL = 75 * time.Minute
)

// clampTTL returns r's TTL, cut to the maximum of its type.
func clampTTL(r *record) time.Duration {
	ttl := time.Duration(r.TTL) * time.Second
	limit := maxOtherTTL
	switch r.Type {
	case typeSRV, typeA, typeAAAA:
		limit = maxHostTTL
	}
	return min(ttl, limit)
}

// evictShare is the share of the cache evicted at once when it is full
// (1/16, 256 records): eviction sorts the candidates, so it is done in
// batches.
const evictShare = 16

// entry is one cached record.
type entry struct {
	rec       record
	ttl       time.Duration
	received  time.Time
	expires   time.Time
	refresh   int       // cache-maintenance queries sent for this TTL (RFC 6762 §5.2)
	refreshAt time.Time // when the next one is due; zero after the last
	src       netip.AddrPort
	ifIndex   int
	v6        bool
	goodbye   bool // a goodbye (TTL 0) arrived: it expires in a second (§10.1)
}

// cache holds received records until their TTL runs out (RFC 6762 §10).
type cache struct {
	sets   map[rrKey][]*entry
	ptrs   map[rrKey]map[string]*entry // PTR records by set and target in lower case: a set may hold thousands
	n, max int
	nextAt time.Time // earliest expiry or maintenance time
	dirty  bool      // nextAt must be computed again
}

func (c *cache) init(max int) {
	c.sets = make(map[rrKey][]*entry)
	c.ptrs = make(map[rrKey]map[string]*entry)
	c.max = max
}

func (c *cache) live(k rrKey, now time.Time) []*entry {
	var out []*entry
	for _, e := range c.sets[k] {
		if !e.goodbye && e.expires.After(now) {
			out = append(out, e)
		}
	}
	return out
}

// newest returns the record of set k received last that is alive, or nil.
func (c *cache) newest(k rrKey, now time.Time) *entry {
	var best *entry
	for _, e := range c.live(k, now) {
		if best == nil || e.received.After(best.received) {
			best = e
		}
	}
	return best
}

// put caches r or refreshes the same record, as received in in, its TTL
// clamped (clampTTL). It reports false when the cache is full.
func (c *cache) put(r record, in inbound, now time.Time) (*entry, bool) {
	k := r.key()
	ttl := clampTTL(&r)
	same := c.sets[k]
	if r.Type == typePTR {
		same = nil
		if e := c.ptr(k, r.Target); e != nil {
			same = []*entry{e}
		}
	}
	for _, e := range same {
		if e.rec.sameData(&r) {
			e.rec, e.ttl, e.received, e.expires = r, ttl, now, now.Add(ttl)
			e.src, e.ifIndex, e.v6, e.goodbye = in.src, in.ifIndex, in.v6, false
			e.refresh, e.refreshAt = 0, maintenanceAt(now, ttl, 0)
			c.dirty = true
			return e, true
		}
	}
	if c.n >= c.max {
		return nil, false
	}
	e := &entry{rec: r, ttl: ttl, received: now, expires: now.Add(ttl), refreshAt: maintenanceAt(now, ttl, 0),
		src: in.src, ifIndex: in.ifIndex, v6: in.v6}
	c.sets[k] = append(c.sets[k], e)
	c.n++
	if r.Type == typePTR {
		if c.ptrs[k] == nil {
			c.ptrs[k] = make(map[string]*entry)
		}
		c.ptrs[k][lower(r.Target)] = e
	}
	c.dirty = true
	return e, true
}

// ptr returns the PTR record of set k that points to target, or nil.
func (c *cache) ptr(k rrKey, target string) *entry {
	return c.ptrs[k][lower(target)]
}

// unindex removes e from the PTR index.
func (c *cache) unindex(e *entry) {
	if e.rec.Type != typePTR {
		return
	}
	k := e.rec.key()
	if m := c.ptrs[k]; m[lower(e.rec.Target)] == e {
		delete(m, lower(e.rec.Target))
		if len(m) == 0 {
			delete(c.ptrs, k)
		}
	}
}

// full reports whether the cache holds its maximum of records.
func (c *cache) full() bool { return c.n >= c.max }

// evict removes up to n records for which keep is false, those received
// longest ago first, and returns them. Records a flood brought in are the
// candidates: what keep protects (the records of the instances delivered)
// stays.
func (c *cache) evict(n int, keep func(*entry) bool) []*entry {
	var cands []*entry
	for _, set := range c.sets {
		for _, e := range set {
			if !keep(e) {
				cands = append(cands, e)
			}
		}
	}
	if len(cands) > n {
		slices.SortFunc(cands, func(a, b *entry) int { return cmp.Compare(a.received.UnixNano(), b.received.UnixNano()) })
		cands = cands[:n]
	}
	gone := make(map[*entry]bool, len(cands))
	for _, e := range cands {
		gone[e] = true
	}
	for k, set := range c.sets {
		kept := set[:0]
		for _, e := range set {
			if gone[e] {
				c.n--
				c.unindex(e)
				continue
			}
			kept = append(kept, e)
		}
		clear(set[len(kept):])
		if len(kept) == 0 {
			delete(c.sets, k)
		} else {
			c.sets[k] = kept
		}
	}
	if len(cands) > 0 {
		c.dirty = true
	}
	return cands
}

// maintenanceAt is when the cache-maintenance query number step (0 to 3)
// of a record received at t is due: at 80, 85, 90 and 95 % of its TTL,
// plus up to 2 % at random (RFC 6762 §5.2). Zero after the last.
func maintenanceAt(t time.Time, ttl time.Duration, step int) time.Time {
	if step > 3 {
		return time.Time{}
	}
	pct := 80 + 5*float64(step) + 2*rand.Float64()
	return t.Add(time.Duration(float64(ttl) * pct / 100))
}

// bye marks the record r names, if cached, as said goodbye to: it expires
// in a second (RFC 6762 §10.1).
func (c *cache) bye(r record, now time.Time) {
	set := c.sets[r.key()]
	if r.Type == typePTR {
		set = nil
		if e := c.ptr(r.key(), r.Target); e != nil {
			set = []*entry{e}
		}
	}
	for _, e := range set {
		if e.rec.sameData(&r) && !e.goodbye {
			e.goodbye = true
			e.expires = now.Add(time.Second)
			e.refreshAt = time.Time{}
			c.dirty = true
		}
	}
}

// flush acts on the cache-flush bit (RFC 6762 §10.2): records of set k
// received more than a second ago that are not in keep expire in a
// second.
func (c *cache) flush(k rrKey, keep []record, now time.Time) {
	for _, e := range c.sets[k] {
		if !now.After(e.received.Add(time.Second)) || containsRecord(keep, &e.rec) {
			continue
		}
		if e.expires.After(now.Add(time.Second)) {
			e.expires = now.Add(time.Second)
			e.refreshAt = time.Time{}
			c.dirty = true
		}
	}
}

// expire removes the records whose time has run out and returns them.
func (c *cache) expire(now time.Time) []*entry {
	var gone []*entry
	for k, set := range c.sets {
		kept := set[:0]
		for _, e := range set {
			if e.expires.After(now) {
				kept = append(kept, e)
				continue
			}
			gone = append(gone, e)
			c.n--
			c.unindex(e)
		}
		clear(set[len(kept):])
		if len(kept) == 0 {
			delete(c.sets, k)
		} else {
			c.sets[k] = kept
		}
	}
	if len(gone) > 0 {
		c.dirty = true
	}
	return gone
}

// maintain calls fn for each record whose next maintenance query is due,
// and schedules the one after.
func (c *cache) maintain(now time.Time, fn func(*entry)) {
	if c.next().After(now) {
		return
	}
	for _, set := range c.sets {
		for _, e := range set {
			if e.refreshAt.IsZero() || e.refreshAt.After(now) {
				continue
			}
			fn(e)
			e.refresh++
			e.refreshAt = maintenanceAt(e.received, e.ttl, e.refresh)
			c.dirty = true
		}
	}
}

// next returns the earliest expiry or maintenance time, zero when the
// cache is empty.
func (c *cache) next() time.Time {
	if !c.dirty {
		return c.nextAt
	}
	var at time.Time
	for _, set := range c.sets {
		for _, e := range set {
			for _, t := range []time.Time{e.expires, e.refreshAt} {
				if !t.IsZero() && (at.IsZero() || t.Before(at)) {
					at = t
				}
			}
		}
	}
	c.nextAt, c.dirty = at, false
	return at
}
