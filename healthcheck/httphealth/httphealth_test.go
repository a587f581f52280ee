package httphealth_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/healthcheck/httphealth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHealthHandler mounts the handler as an application's own mux would.
func TestHealthHandler(t *testing.T) {
	get := func(h http.Handler, method string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/", nil))
		return rec
	}
	always := httphealth.Handler(nil)
	assert.Equal(t, http.StatusOK, get(always, http.MethodGet).Code)
	assert.Equal(t, "ok", get(always, http.MethodGet).Body.String())
	assert.Equal(t, "no-store", get(always, http.MethodGet).Header().Get("Cache-Control"))
	assert.Equal(t, http.StatusMethodNotAllowed, get(always, http.MethodDelete).Code)
	assert.Equal(t, "GET, HEAD", get(always, http.MethodDelete).Header().Get("Allow"))

	// Handler(s.Healthy) follows a server's SetHealthy, with no Start.
	s := healthcheck.NewHTTPServer(healthcheck.ServerConfig{})
	h := httphealth.Handler(s.Healthy)
	assert.Equal(t, http.StatusOK, get(h, http.MethodGet).Code)
	s.SetHealthy(false)
	rec := get(h, http.MethodGet)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.True(t, strings.HasPrefix(rec.Body.String(), "unhealthy"))
	assert.Equal(t, http.StatusServiceUnavailable, get(h, http.MethodHead).Code)
	require.NoError(t, s.Close())
}

// An application serves the HTTP health check on its own mux, with no
// HTTPServer listening, and marks itself down while it drains.
func ExampleHandler() {
	var up atomic.Bool
	up.Store(true)
	mux := http.NewServeMux()
	mux.Handle("/healthz", httphealth.Handler(up.Load))

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	fmt.Println(rec.Code, rec.Body)

	up.Store(false)
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	fmt.Println(rec.Code, rec.Body)
	// Output:
	// 200 ok
	// 503 unhealthy
}
