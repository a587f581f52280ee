package healthcheck_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/pirlan/pir/healthcheck"
)

// A peer serves its health check; another peer probes the URI it
// advertises.
func Example() {
	srv := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	probers := healthcheck.NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if err := probers.Probe(ctx, srv.URI()); err != nil {
		fmt.Println("unhealthy:", err)
	} else {
		fmt.Println("healthy")
	}

	srv.SetHealthy(false)
	if err := probers.Probe(ctx, srv.URI()); err != nil {
		fmt.Println("unhealthy")
	}
	// Output:
	// healthy
	// unhealthy
}

// An application serves the HTTP health check on its own mux, with no
// HTTPServer listening, and marks itself down while it drains.
func ExampleHTTPServer_Handler() {
	health := healthcheck.NewHTTPServer(healthcheck.ServerConfig{})
	mux := http.NewServeMux()
	mux.Handle("/healthz", health.Handler())

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	fmt.Println(rec.Code, rec.Body)

	health.SetHealthy(false)
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	fmt.Println(rec.Code, rec.Body)
	// Output:
	// 200 ok
	// 503 unhealthy
}
