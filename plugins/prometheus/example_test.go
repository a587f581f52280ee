package prometheus_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	pirprom "github.com/pirlan/pir/plugins/prometheus"
	"github.com/pirlan/pir/transport/mem"
)

// Two members on an in-memory LAN, probed over TCP on 127.0.0.1; member a
// serves its metrics over HTTP, and the example scrapes them once b has
// joined.
func Example() {
	ctx := context.Background()
	lan, _ := mem.NewLAN(mem.Config{Loopback: true})
	health := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	if err := health.Start("127.0.0.1:0"); err != nil {
		fmt.Println(err)
		return
	}
	defer health.Close()

	// The probe histogram wraps the Prober, so it comes before Join.
	probes, err := pirprom.NewProbeMetrics(pirprom.DefaultProbeConfig("web"))
	if err != nil {
		fmt.Println(err)
		return
	}
	a, err := discovery.Join(ctx, discovery.Config{
		Name:      "web",
		Self:      discovery.Peer{ID: "a", HealthURI: health.URI()},
		Transport: lan.Join(),
		Prober:    probes.Instrument(healthcheck.NewRegistry()),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	// The Collector reads the Group, so it comes after.
	metrics, err := pirprom.NewCollector(a, pirprom.DefaultConfig("web"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer metrics.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics, probes)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	joined := make(chan struct{})
	a.AddListener(func(e discovery.Event) bool {
		if e.Type == discovery.Joined {
			close(joined)
			return false
		}
		return true
	})
	b, err := discovery.Join(ctx, discovery.Config{
		Name:      "web",
		Self:      discovery.Peer{ID: "b", HealthURI: health.URI()},
		Transport: lan.Join(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	select {
	case <-joined:
	case <-time.After(10 * time.Second):
		fmt.Println("b did not join")
		return
	}

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "pir_members{") {
			fmt.Println(sc.Text())
		}
	}
	// Output:
	// pir_members{group="web",verdict="healthy"} 1
	// pir_members{group="web",verdict="suspect"} 0
}

// Instrument times any Prober, here a ProberFunc that finds everyone
// unhealthy.
func ExampleProbeMetrics_Instrument() {
	probes, err := pirprom.NewProbeMetrics(pirprom.ProbeConfig{Group: "web"})
	if err != nil {
		fmt.Println(err)
		return
	}
	p := probes.Instrument(healthcheck.ProberFunc(func(context.Context, *url.URL) error {
		return fmt.Errorf("probe: %w", healthcheck.ErrUnhealthy)
	}))
	err = p.Probe(context.Background(), &url.URL{Scheme: "tcp", Host: "198.18.0.1:7"})
	fmt.Println(err)

	reg := prometheus.NewRegistry()
	reg.MustRegister(probes)
	mfs, _ := reg.Gather()
	for _, m := range mfs[0].GetMetric() {
		fmt.Print(mfs[0].GetName(), " ")
		for _, l := range m.GetLabel() {
			fmt.Printf("%s=%s ", l.GetName(), l.GetValue())
		}
		fmt.Println("count", m.GetHistogram().GetSampleCount())
	}
	// Output:
	// probe: healthcheck: unhealthy reply
	// pir_probe_duration_seconds group=web result=unhealthy scheme=tcp count 1
}
