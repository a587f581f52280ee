// Package httphealth serves pir's HTTP health check from an application's
// own net/http server: Handler answers as a healthcheck.HTTPServer does.
//
// It is a package of its own so that package healthcheck, which every
// member links, does not link net/http (about 1.5 MiB of resident memory
// per process); an application that already runs an HTTP server has paid
// for net/http and loses nothing by importing this.
//
// A member that announces http://host:port/healthz mounts the handler
// there, and keeps the health flag wherever it likes: an atomic.Bool, or a
// healthcheck server's Healthy:
//
//	mux.Handle("/healthz", httphealth.Handler(srv.Healthy))
package httphealth

import (
	"io"
	"net/http"
)

// Handler returns an http.Handler that answers a health probe: for GET and
// HEAD, 200 with the body "ok" when healthy reports true (or healthy is
// nil), and 503 with the body "unhealthy" otherwise, both text/plain and
// "Cache-Control: no-store"; for any other method, 405 with an Allow
// header. healthy is called once per request, from the request's
// goroutine: it must be safe for concurrent use.
func Handler(healthy func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if healthy != nil && !healthy() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "unhealthy")
			return
		}
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "ok")
	})
}
