package healthcheck_test

import (
	"context"
	"fmt"
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
