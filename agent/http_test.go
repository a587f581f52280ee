package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/score"
)

// httpServer serves the agent's API on a real listener on 127.0.0.1.
func httpServer(t *testing.T, a *Agent) *httptest.Server {
	t.Helper()
	netlab.Require(t)
	s := httptest.NewServer(a.HTTP())
	t.Cleanup(s.Close)
	return s
}

type response struct {
	code   int
	header http.Header
	body   string
}

func do(t *testing.T, method, url string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{res.StatusCode, res.Header, string(b)}
}

func jsonError(t *testing.T, r response, code int) {
	t.Helper()
	assert.Equal(t, code, r.code, r.body)
	assert.Equal(t, "application/json; charset=utf-8", r.header.Get("Content-Type"))
	var e struct{ Error string }
	require.NoError(t, json.Unmarshal([]byte(r.body), &e))
	assert.NotEmpty(t, e.Error)
}

func TestHTTPGroupsAndMembers(t *testing.T) {
	a := newAgent(t, Config{})
	webGroup(t, a)
	s := httpServer(t, a)

	r := do(t, "GET", s.URL+"/v1/groups")
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
	var groups []groupJSON
	require.NoError(t, json.Unmarshal([]byte(r.body), &groups))
	require.Len(t, groups, 2)
	assert.Equal(t, "empty", groups[0].Name, "sorted by name")
	assert.Equal(t, groupJSON{Name: "web", Members: 5, Healthy: 4, Index: 5}, groups[1])

	r = do(t, "GET", s.URL+"/v1/groups/web/members")
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "5", r.header.Get("X-Pir-Index"))
	var raw []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.body), &raw))
	require.Len(t, raw, 5)
	var ids []string
	for _, m := range raw {
		ids = append(ids, m["id"].(string))
	}
	assert.Equal(t, []string{"M1", "m2", "m6", "not a label!", "sick"}, ids, "sorted by id")
	m1 := raw[0]
	assert.Equal(t, "tcp://198.18.0.1:8080", m1["comms_uri"])
	assert.Equal(t, "tcp://198.18.0.1:8080", m1["health_uri"])
	assert.Equal(t, "198.18.0.1:9999", m1["addr"])
	assert.Equal(t, 1.0, m1["health"])
	assert.Equal(t, "healthy", m1["verdict"])
	assert.Equal(t, "2026-12-04T14:00:00.123Z", m1["joined"])
	assert.Equal(t, "2026-12-04T14:00:01.123Z", m1["last_heard"])
	assert.Equal(t, map[string]any{"zone": "b", "role": `a"b\c`, "x": "<script>\x01"}, m1["meta"])
	assert.NotContains(t, r.body, "<script>", "escaped in JSON")

	r = do(t, "GET", s.URL+"/v1/groups/WEB/members?healthy=1")
	require.Equal(t, http.StatusOK, r.code)
	require.NoError(t, json.Unmarshal([]byte(r.body), &raw))
	assert.Len(t, raw, 4, "the suspect member filtered out")

	r = do(t, "HEAD", s.URL+"/v1/groups/web/members")
	assert.Equal(t, http.StatusOK, r.code)
	assert.Empty(t, r.body)

	r = do(t, "GET", s.URL+"/")
	assert.Equal(t, http.StatusOK, r.code, "the page")
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
}

func TestHTTPErrors(t *testing.T) {
	a := newAgent(t, Config{})
	webGroup(t, a)
	s := httpServer(t, a)
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/v1/groups/nope/members", 404},
		{"GET", "/v1/groups/nope/events", 404},
		{"GET", "/v1/nothing", 404},
		{"GET", "/v1/groups/web/members?healthy=maybe", 400},
		{"GET", "/v1/groups/web/members?index=x", 400},
		{"GET", "/v1/groups/web/members?index=-1", 400},
		{"GET", "/v1/groups/web/members?index=1&wait=soon", 400},
		{"GET", "/v1/groups/web/members?index=1&wait=-1s", 400},
		{"GET", "/v1/groups/web/members?wait=1s", 400},
		{"GET", "/v1/groups/web/events?since=x", 400},
		{"POST", "/v1/groups", 405},
		{"PUT", "/v1/groups/web/members", 405},
		{"DELETE", "/", 405},
		{"OPTIONS", "/v1/events", 405},
	} {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			r := do(t, tc.method, s.URL+tc.path)
			jsonError(t, r, tc.code)
			assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
			if tc.code == 405 {
				assert.Equal(t, "GET, HEAD", r.header.Get("Allow"))
			}
		})
	}
	assert.Equal(t, uint64(14), a.Stats().HTTPBad)
}

// DNS rebinding: a page whose name now resolves to 127.0.0.1 sends its own
// Host; the loopback listener refuses it.
func TestHTTPHostCheck(t *testing.T) {
	for _, public := range []bool{false, true} {
		t.Run("public="+strconv.FormatBool(public), func(t *testing.T) {
			a := newAgent(t, Config{Public: public})
			webGroup(t, a)
			s := httpServer(t, a)
			_, port, _ := strings.Cut(strings.TrimPrefix(s.URL, "http://"), ":")
			for host, code := range map[string]int{
				"evil.example:" + port: 403, "evil.example": 403, "localhost.evil.example:" + port: 403,
				"198.18.0.1:" + port: 403,
				"localhost:" + port:  200, "LOCALHOST": 200, "127.0.0.1:" + port: 200, "[::1]:" + port: 200,
			} {
				r := do(t, "GET", s.URL+"/v1/groups", "Host", host)
				assert.Equal(t, code, r.code, host)
				if code == 403 {
					jsonError(t, r, 403)
				}
			}
			assert.Equal(t, uint64(4), a.Stats().HTTPForbidden)
		})
	}
}

// A browser page from another origin is refused, whatever it asks.
func TestHTTPCrossOrigin(t *testing.T) {
	a := newAgent(t, Config{Public: true})
	webGroup(t, a)
	s := httpServer(t, a)
	own := s.URL
	for _, tc := range []struct {
		header []string
		code   int
	}{
		{[]string{"Origin", "http://evil.example"}, 403},
		{[]string{"Origin", "null"}, 403},
		{[]string{"Origin", strings.Replace(own, "127.0.0.1", "localhost", 1)}, 403},
		{[]string{"Sec-Fetch-Site", "cross-site"}, 403},
		{[]string{"Sec-Fetch-Site", "same-site"}, 403},
		{[]string{"Origin", own}, 200},
		{[]string{"Sec-Fetch-Site", "same-origin"}, 200},
		{[]string{"Sec-Fetch-Site", "none"}, 200},
		{nil, 200},
	} {
		for _, path := range []string{"/v1/groups", "/v1/groups/web/members", "/"} {
			r := do(t, "GET", s.URL+path, tc.header...)
			assert.Equal(t, tc.code, r.code, "%v %s", tc.header, path)
		}
	}
}

// blocked waits until n blocking queries are waiting.
func blocked(t *testing.T, a *Agent, n int64) {
	t.Helper()
	require.Eventually(t, func() bool { return a.waiting.Load() == n }, 10*time.Second, time.Millisecond)
}

// A blocking query returns within 100 ms of the change reaching the
// agent, with the new index; one whose wait ends returns the same index.
func TestHTTPBlockingQuery(t *testing.T) {
	a := newAgent(t, Config{})
	v := feed(t, a, "web", fake("m1", "198.18.0.1", 1, score.Healthy, nil))
	s := httpServer(t, a)

	r := do(t, "GET", s.URL+"/v1/groups/web/members?index=0")
	assert.Equal(t, "1", r.header.Get("X-Pir-Index"), "an index already passed: at once")

	changed := make(chan time.Time, 1)
	a.mu.Lock()
	a.appliedFor = func(uint64) { changed <- time.Now() }
	a.mu.Unlock()
	got := make(chan response, 1)
	go func() {
		req, _ := http.NewRequest("GET", s.URL+"/v1/groups/web/members?index=1&wait=1m", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- response{code: -1, body: err.Error()}
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		got <- response{res.StatusCode, res.Header, string(b)}
	}()
	blocked(t, a, 1)
	a.apply(v, discovery.Event{Type: discovery.Joined, Member: fake("m2", "198.18.0.2", 2, score.Healthy, nil)})
	at := <-changed
	r = <-got
	took := time.Since(at)
	t.Logf("figures: blocking query answered %v after the change reached the agent", took)
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Equal(t, "2", r.header.Get("X-Pir-Index"))
	assert.Contains(t, r.body, `"m2"`)
	assert.Less(t, took, 100*time.Millisecond)

	r = do(t, "GET", s.URL+"/v1/groups/web/members?index=2&wait=20ms")
	assert.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "2", r.header.Get("X-Pir-Index"), "the wait ended: the same index")
}

// sseEvent is one event read from a stream.
type sseEvent struct {
	id, event string
	data      map[string]any
}

// sseReader reads events from a stream, skipping comments.
type sseReader struct {
	t   *testing.T
	br  *bufio.Reader
	res *http.Response
}

func openStream(t *testing.T, ctx context.Context, url string, header ...string) *sseReader {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { res.Body.Close() })
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	assert.Equal(t, "no-store", res.Header.Get("Cache-Control"))
	return &sseReader{t: t, br: bufio.NewReader(res.Body), res: res}
}

// next returns the next event, or an error when the stream ends.
func (r *sseReader) next() (sseEvent, error) {
	var e sseEvent
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			return e, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if e.event != "" {
				return e, nil
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			e.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			e.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &e.data); err != nil {
				return e, err
			}
		}
	}
}

func (r *sseReader) must() sseEvent {
	r.t.Helper()
	e, err := r.next()
	require.NoError(r.t, err)
	return e
}

func TestHTTPEventStream(t *testing.T) {
	a := newAgent(t, Config{})
	v := feed(t, a, "web", fake("m1", "198.18.0.1", 1, score.Healthy, nil), fake("m2", "198.18.0.2", 2, score.Healthy, map[string]string{"k": "<b>"}))
	feed(t, a, "db", fake("d1", "198.18.0.3", 3, score.Healthy, nil))
	s := httpServer(t, a)
	ctx := t.Context()

	st := openStream(t, ctx, s.URL+"/v1/groups/web/events")
	for _, id := range []string{"m1", "m2"} {
		e := st.must()
		assert.Equal(t, "joined", e.event)
		assert.Equal(t, "2", e.id, "the group's index")
		assert.Equal(t, id, e.data["id"])
		assert.Equal(t, true, e.data["snapshot"])
		assert.Equal(t, "web", e.data["group"])
	}
	all := openStream(t, ctx, s.URL+"/v1/events")
	var got []string
	for range 3 {
		e := all.must()
		got = append(got, e.data["group"].(string)+"/"+e.data["id"].(string)+"@"+e.id)
	}
	assert.Equal(t, []string{"db/d1@3", "web/m1@3", "web/m2@3"}, got, "every group's snapshot")

	m2 := v.members["m2"]
	a.apply(v, discovery.Event{Type: discovery.HealthChanged, Member: func() discovery.Member {
		m := m2
		m.Verdict, m.Health = score.Suspect, 0.5
		return m
	}()})
	a.apply(v, discovery.Event{Type: discovery.Left, Member: m2, Reason: discovery.Goodbye})
	e := st.must()
	assert.Equal(t, "health", e.event)
	assert.Equal(t, "4", e.id)
	assert.Equal(t, "suspect", e.data["verdict"])
	e = st.must()
	assert.Equal(t, "left", e.event)
	assert.Equal(t, "5", e.id)
	assert.Equal(t, "goodbye", e.data["reason"])
	assert.Equal(t, "m2", e.data["id"])
	assert.Nil(t, e.data["snapshot"])
	e = all.must()
	assert.Equal(t, "health", e.event, "the all-groups stream too")
	assert.Equal(t, "left", all.must().event)

	// Resume after id 4: only the left.
	re := openStream(t, ctx, s.URL+"/v1/groups/web/events", "Last-Event-ID", "4")
	e = re.must()
	assert.Equal(t, "left", e.event)
	assert.Equal(t, "5", e.id)
	// Resume from ?since: the kept events after it, across groups, in order.
	re = openStream(t, ctx, s.URL+"/v1/events?since=1")
	var seq []string
	for range 4 {
		seq = append(seq, re.must().id)
	}
	assert.Equal(t, []string{"2", "3", "4", "5"}, seq)
	// An id from the future (the agent restarted): a snapshot.
	re = openStream(t, ctx, s.URL+"/v1/groups/web/events", "Last-Event-ID", "99")
	e = re.must()
	assert.Equal(t, true, e.data["snapshot"])
	assert.Equal(t, "m1", e.data["id"])
}

// Events pushed out of the ring cannot be replayed: a resume from before
// them gets a snapshot.
func TestHTTPEventStreamResumeAfterLoss(t *testing.T) {
	a := newAgent(t, Config{MaxEvents: 2})
	feed(t, a, "web", fake("m1", "198.18.0.1", 1, score.Healthy, nil), fake("m2", "198.18.0.2", 2, score.Healthy, nil),
		fake("m3", "198.18.0.3", 3, score.Healthy, nil))
	s := httpServer(t, a)
	re := openStream(t, t.Context(), s.URL+"/v1/groups/web/events", "Last-Event-ID", "2")
	e := re.must()
	assert.Equal(t, "3", e.id, "event 3 is kept")
	assert.Nil(t, e.data["snapshot"])
	re = openStream(t, t.Context(), s.URL+"/v1/groups/web/events", "Last-Event-ID", "0")
	for _, id := range []string{"m1", "m2", "m3"} {
		e := re.must()
		assert.Equal(t, true, e.data["snapshot"])
		assert.Equal(t, id, e.data["id"])
	}
}

// A client that stops reading is disconnected once its buffer is full,
// and counted; the agent goes on serving the others.
func TestHTTPSlowStreamDropped(t *testing.T) {
	a := newAgent(t, Config{MaxEvents: 16})
	v := feed(t, a, "web", fake("m1", "198.18.0.1", 1, score.Healthy, nil))
	s := httpServer(t, a)
	slow := openStream(t, t.Context(), s.URL+"/v1/groups/web/events")
	slow.must() // the snapshot; then it reads no more
	require.Equal(t, 1, a.Stats().SSEStreams)

	big := strings.Repeat("x", 4000)
	m := fake("m1", "198.18.0.1", 1, score.Healthy, map[string]string{"pad": big})
	sent := 0
	for a.Stats().SSEDropped == 0 {
		require.Less(t, sent, 1_000_000, "never dropped")
		m.Health = float64(sent)
		a.apply(v, discovery.Event{Type: discovery.Updated, Member: m})
		sent++
	}
	t.Logf("figures: slow stream dropped after %d events of ~4 KB", sent)
	require.Eventually(t, func() bool { return a.Stats().SSEStreams == 0 }, 10*time.Second, time.Millisecond,
		"the dropped stream's handler returned")
	// The slow client finds its stream ended once it reads what was sent.
	for {
		if _, err := slow.next(); err != nil {
			break
		}
	}
	assert.Equal(t, uint64(1), a.Stats().SSEDropped)
	r := do(t, "GET", s.URL+"/v1/groups")
	assert.Equal(t, http.StatusOK, r.code)
}

// Close ends a blocking query (with the current body) and a stream, and
// returns once their handlers have.
func TestHTTPCloseEndsRequests(t *testing.T) {
	a, err := New(Config{})
	require.NoError(t, err)
	feed(t, a, "web", fake("m1", "198.18.0.1", 1, score.Healthy, nil))
	s := httpServer(t, a)
	st := openStream(t, t.Context(), s.URL+"/v1/events")
	st.must()
	got := make(chan response, 1)
	go func() {
		res, err := http.Get(s.URL + "/v1/groups/web/members?index=1&wait=10m")
		if err != nil {
			got <- response{code: -1, body: err.Error()}
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		got <- response{res.StatusCode, res.Header, string(b)}
	}()
	blocked(t, a, 1)
	require.NoError(t, a.Close())
	r := <-got
	assert.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "1", r.header.Get("X-Pir-Index"))
	_, err = st.next()
	assert.Error(t, err, "the stream ended")
	assert.Zero(t, a.Stats().SSEStreams)
	assert.Zero(t, a.waiting.Load())
	require.NoError(t, a.Close(), "idempotent")

	r = do(t, "GET", s.URL+"/v1/events")
	jsonError(t, r, http.StatusServiceUnavailable)
}

// Blocking queries waiting at once are bounded: past maxWaiting one is
// refused with 503 and counted; Close answers all the waiting ones.
func TestHTTPBlockingQueriesBounded(t *testing.T) {
	a, err := New(Config{})
	require.NoError(t, err)
	feed(t, a, "web", fake("m1", "198.18.0.1", 1, score.Healthy, nil))
	h := a.HTTP()
	ask := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/v1/groups/web/members?index=1&wait=10m", nil)
		req.Host = "localhost"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	codes := make(chan int, maxWaiting)
	for range maxWaiting {
		go func() { codes <- ask().Code }()
	}
	blocked(t, a, maxWaiting)
	w := ask()
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, "1", w.Header().Get("Retry-After"))
	assert.Equal(t, uint64(1), a.Stats().WaitRefused)
	assert.Equal(t, maxWaiting, a.Stats().Waiting)
	require.NoError(t, a.Close())
	for range maxWaiting {
		assert.Equal(t, http.StatusOK, <-codes)
	}
}
