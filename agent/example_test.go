package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"

	"github.com/pirlan/pir/agent"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/transport/mem"
)

// An agent watches group web through a passive member and answers a
// blocking query once web-1 has joined. The in-memory LAN stands in for
// multicast; the health check is a real TCP probe on 127.0.0.1.
func Example() {
	lan, _ := mem.NewLAN(mem.Config{Loopback: true})
	watcher, err := discovery.Join(context.Background(), discovery.Config{
		Name: "web", Passive: true, Transport: lan.Join(),
	})
	if err != nil {
		panic(err)
	}
	defer watcher.Close()
	a, err := agent.New(agent.Config{})
	if err != nil {
		panic(err)
	}
	defer a.Close()
	if err := a.Watch(watcher); err != nil {
		panic(err)
	}

	hc := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	if err := hc.Start("127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer hc.Close()
	comms, _ := url.Parse("tcp://127.0.0.1:8080")
	member, err := discovery.Join(context.Background(), discovery.Config{
		Name:      "web",
		Self:      discovery.Peer{ID: "web-1", HealthURI: hc.URI(), CommsURI: comms},
		Transport: lan.Join(),
	})
	if err != nil {
		panic(err)
	}
	defer member.Close()

	// Wait for a change from index 0: web-1 joining.
	req := httptest.NewRequest("GET", "/v1/groups/web/members?index=0&wait=10s", nil)
	req.Host = "localhost:8500"
	w := httptest.NewRecorder()
	a.HTTP().ServeHTTP(w, req)
	var members []struct {
		ID, Verdict string
		Comms       string `json:"comms_uri"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &members); err != nil {
		panic(err)
	}
	fmt.Println(w.Code, w.Header().Get("X-Pir-Index"))
	for _, m := range members {
		fmt.Println(m.ID, m.Verdict, m.Comms)
	}
	// Output:
	// 200 1
	// web-1 healthy tcp://127.0.0.1:8080
}
