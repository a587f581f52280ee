package agent

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HTTP API limits.
const (
	defaultWait  = 5 * time.Minute  // a blocking query's wait when ?wait= is absent
	maxWait      = 10 * time.Minute // a longer ?wait= is cut to this
	pingEvery    = 15 * time.Second // an SSE comment line this often
	writeTimeout = 10 * time.Second // one write to an SSE client
)

// HTTP returns the agent's HTTP handler: the API under /v1/ and the live
// page at / (docs/agent.md). Only GET and HEAD are allowed. Every
// response has Cache-Control: no-store.
func (a *Agent) HTTP() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/groups", a.handleGroups)
	mux.HandleFunc("GET /v1/groups/{name}/members", a.handleMembers)
	mux.HandleFunc("GET /v1/groups/{name}/events", func(w http.ResponseWriter, r *http.Request) {
		v := a.group(r.PathValue("name"))
		if v == nil {
			a.httpError(w, http.StatusNotFound, "no such group")
			return
		}
		a.handleEvents(w, r, v)
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) { a.handleEvents(w, r, nil) })
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		a.httpError(w, http.StatusNotFound, "no such endpoint")
	})
	mux.Handle("/", pageHandler())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.stats.httpRequests.Add(1)
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		if !a.hostAllowed(r) {
			a.stats.httpForbidden.Add(1)
			a.writeError(w, http.StatusForbidden, "host not allowed")
			return
		}
		if !originAllowed(r) {
			a.stats.httpForbidden.Add(1)
			a.writeError(w, http.StatusForbidden, "cross-origin request refused")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			a.httpError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// hostAllowed checks the Host header of a request to a loopback listener
// (or to any listener unless Config.Public): it must name loopback, so
// that a web page whose name was rebound to 127.0.0.1 cannot read the API.
func (a *Agent) hostAllowed(r *http.Request) bool {
	check := !a.cfg.Public
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(la.String()); err == nil && ap.Addr().Unmap().IsLoopback() {
			check = true
		}
	}
	if !check {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}

// originAllowed refuses a browser's cross-origin request: an Origin other
// than the agent's own (the Host the request was sent to), or
// Sec-Fetch-Site cross-site or same-site. Requests without either header
// (curl, scripts) pass.
func originAllowed(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Host, r.Host) {
			return false
		}
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return false
	}
	return true
}

type errorJSON struct {
	Error string `json:"error"`
}

// httpError writes a JSON error and counts it as a bad request.
func (a *Agent) httpError(w http.ResponseWriter, code int, msg string) {
	a.stats.httpBad.Add(1)
	a.writeError(w, code, msg)
}

func (a *Agent) writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, marshal(errorJSON{msg}))
}

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}

type groupJSON struct {
	Name    string `json:"name"`
	Members int    `json:"members"`
	Healthy int    `json:"healthy"`
	Index   uint64 `json:"index"`
}

func (a *Agent) handleGroups(w http.ResponseWriter, r *http.Request) {
	a.mu.RLock()
	out := make([]groupJSON, 0, len(a.groups))
	for _, v := range a.groups {
		g := groupJSON{Name: v.name, Members: len(v.members), Index: v.index}
		for _, m := range v.members {
			if healthy(m) {
				g.Healthy++
			}
		}
		out = append(out, g)
	}
	a.mu.RUnlock()
	slices.SortFunc(out, func(x, y groupJSON) int { return strings.Compare(x.Name, y.Name) })
	writeJSON(w, http.StatusOK, marshal(out))
}

// parseBool reads a flag parameter: absent is false, present and empty,
// 1 or true is true, 0 or false is false.
func parseBool(q url.Values, key string) (bool, error) {
	if !q.Has(key) {
		return false, nil
	}
	switch q.Get(key) {
	case "", "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("%s: want 1 or 0", key)
}

func (a *Agent) handleMembers(w http.ResponseWriter, r *http.Request) {
	v := a.group(r.PathValue("name"))
	if v == nil {
		a.httpError(w, http.StatusNotFound, "no such group")
		return
	}
	q := r.URL.Query()
	healthyOnly, err := parseBool(q, "healthy")
	if err != nil {
		a.httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	wait := defaultWait
	if q.Has("wait") {
		if !q.Has("index") {
			a.httpError(w, http.StatusBadRequest, "wait: needs index")
			return
		}
		d, err := time.ParseDuration(q.Get("wait"))
		if err != nil || d < 0 {
			a.httpError(w, http.StatusBadRequest, "wait: want a duration such as 30s")
			return
		}
		wait = min(d, maxWait)
	}
	if q.Has("index") {
		index, err := strconv.ParseUint(q.Get("index"), 10, 64)
		if err != nil {
			a.httpError(w, http.StatusBadRequest, "index: want a number")
			return
		}
		switch a.block(r, v, index, wait) {
		case blockGone:
			return
		case blockBusy:
			a.stats.waitRefused.Add(1)
			w.Header().Set("Retry-After", "1")
			a.writeError(w, http.StatusServiceUnavailable, "too many blocking queries")
			return
		}
	}
	a.mu.RLock()
	index := v.index
	ms := v.sorted()
	a.mu.RUnlock()
	out := make([]memberJSON, 0, len(ms))
	for _, m := range ms {
		if !healthyOnly || healthy(m) {
			out = append(out, toMemberJSON(m))
		}
	}
	w.Header().Set("X-Pir-Index", strconv.FormatUint(index, 10))
	writeJSON(w, http.StatusOK, marshal(out))
}

type blockResult int

const (
	blockAnswer blockResult = iota // answer with the current members
	blockGone                      // the client went away
	blockBusy                      // too many queries are waiting
)

// block waits until v's index is above index, wait has passed or the
// agent closes.
func (a *Agent) block(r *http.Request, v *view, index uint64, wait time.Duration) blockResult {
	a.mu.RLock()
	passed := v.index > index
	a.mu.RUnlock()
	if passed || !a.enter() {
		return blockAnswer
	}
	defer a.active.Done()
	if a.waiting.Add(1) > maxWaiting {
		a.waiting.Add(-1)
		return blockBusy
	}
	defer a.waiting.Add(-1)
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		a.mu.RLock()
		now, changed := v.index, v.changed
		a.mu.RUnlock()
		if now > index {
			return blockAnswer
		}
		select {
		case <-changed:
		case <-t.C:
			return blockAnswer
		case <-a.done:
			return blockAnswer
		case <-r.Context().Done():
			return blockGone
		}
	}
}

// stream is one SSE client.
type stream struct {
	group  *view // nil: every group
	ch     chan *record
	rc     *http.ResponseController
	remote string

	mu    sync.Mutex
	ended bool
	gone  chan struct{}
}

// offer queues rec for s; false when s's buffer is full (s is then ended:
// a slow client holds no more than its buffer). The agent's mu is held.
func (s *stream) offer(rec *record) bool {
	select {
	case s.ch <- rec:
		return true
	default:
		s.end()
		return false
	}
}

// end disconnects s: its handler returns, and a write it is blocked in
// fails now.
func (s *stream) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.ended = true
	close(s.gone)
	_ = s.rc.SetWriteDeadline(time.Now())
}

var errEnded = errors.New("stream ended")

// arm sets the deadline for the next write, unless s has ended.
func (s *stream) arm() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return errEnded
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	return nil
}

func sseFrame(rec *record) []byte {
	b := make([]byte, 0, len(rec.data)+48)
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, rec.seq, 10)
	b = append(b, "\nevent: "...)
	b = append(b, rec.typ...)
	b = append(b, "\ndata: "...)
	b = append(b, rec.data...)
	return append(b, "\n\n"...)
}

// handleEvents serves the event stream of v, or of every group when v is
// nil.
func (a *Agent) handleEvents(w http.ResponseWriter, r *http.Request, v *view) {
	var since uint64
	resume := false
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			a.httpError(w, http.StatusBadRequest, "Last-Event-ID: want a number")
			return
		}
		since, resume = n, true
	} else if q := r.URL.Query(); q.Has("since") {
		n, err := strconv.ParseUint(q.Get("since"), 10, 64)
		if err != nil {
			a.httpError(w, http.StatusBadRequest, "since: want a number")
			return
		}
		since, resume = n, true
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		return
	}
	if !a.enter() {
		a.writeError(w, http.StatusServiceUnavailable, "agent closed")
		return
	}
	defer a.active.Done()
	s := &stream{group: v, ch: make(chan *record, sseBuffer), rc: http.NewResponseController(w),
		remote: r.RemoteAddr, gone: make(chan struct{})}

	a.mu.Lock()
	if len(a.streams) >= maxStreams {
		a.mu.Unlock()
		a.stats.sseRefused.Add(1)
		a.writeError(w, http.StatusServiceUnavailable, "too many event streams")
		return
	}
	first := a.opening(v, since, resume)
	a.streams[s] = struct{}{}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.streams, s)
		a.mu.Unlock()
	}()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	if s.arm() != nil {
		return
	}
	w.WriteHeader(http.StatusOK)
	for _, rec := range first {
		if _, err := w.Write(sseFrame(rec)); err != nil {
			return
		}
	}
	if s.rc.Flush() != nil {
		return
	}
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		var b []byte
		select {
		case rec := <-s.ch:
			b = sseFrame(rec)
		case <-ping.C:
			b = []byte(": ping\n\n")
		case <-s.gone:
			return
		case <-a.done:
			return
		case <-r.Context().Done():
			return
		}
		if s.arm() != nil {
			return
		}
		if _, err := w.Write(b); err != nil {
			return
		}
		if s.rc.Flush() != nil {
			return
		}
	}
}

// opening returns what a new stream of v (nil: every group) sends first:
// the kept events after since when resume is set and none were lost,
// else the current members as a snapshot. The agent's mu is held.
func (a *Agent) opening(v *view, since uint64, resume bool) []*record {
	views := []*view{v}
	if v == nil {
		views = views[:0]
		for _, g := range a.groups {
			views = append(views, g)
		}
		slices.SortFunc(views, func(x, y *view) int { return strings.Compare(x.name, y.name) })
	}
	var replay, snaps []*record
	for _, g := range views {
		if resume && since <= a.seq {
			if recs, ok := g.since(since); ok {
				replay = append(replay, recs...)
				continue
			}
		}
		id := a.seq
		if v != nil {
			id = g.index
		}
		snaps = append(snaps, g.snapshot(id)...)
	}
	slices.SortStableFunc(replay, func(x, y *record) int {
		switch {
		case x.seq < y.seq:
			return -1
		case x.seq > y.seq:
			return 1
		}
		return 0
	})
	return append(replay, snaps...)
}
