// Example serves a pir group's metrics to Prometheus on /metrics.
//
// By default it needs no network: it starts an in-memory LAN with three
// members (their health servers on 127.0.0.1), watches them, and every
// 10 s makes member-3 unhealthy or healthy again, so that the metrics move:
//
//	cd plugins/prometheus && go run ./example
//	curl -s http://127.0.0.1:2112/metrics | grep '^pir_'
//
// With -multicast it watches a real group on your LAN instead, as a passive
// member that announces nothing (it still probes the members it hears):
//
//	go run ./example -multicast -group web -port 9999
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	pirprom "github.com/pirlan/pir/plugins/prometheus"
	"github.com/pirlan/pir/transport/mem"
	"github.com/pirlan/pir/transport/multicast"
)

// options are the command line's.
type options struct {
	listen    string        // HTTP address of /metrics
	group     string        // group name
	multicast bool          // watch a real LAN group, not the demo
	port      int           // multicast UDP port
	flip      time.Duration // demo: period of member-3's health changes; 0 means never
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", "127.0.0.1:2112", "address to serve /metrics on")
	flag.StringVar(&o.group, "group", "web", "group name")
	flag.BoolVar(&o.multicast, "multicast", false, "watch a group on the LAN by multicast instead of the in-memory demo")
	flag.IntVar(&o.port, "port", 9999, "multicast UDP port (with -multicast)")
	flag.DurationVar(&o.flip, "flip", 10*time.Second, "demo: how often member-3 turns unhealthy or healthy (0: never)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, o, func(addr string) {
		log.Printf("serving http://%s/metrics; Ctrl-C stops", addr)
	})
	if err != nil {
		log.Fatal(err)
	}
}

// run serves the metrics of o.group until ctx is done, then stops everything
// it started. ready is told the address /metrics is served on.
func run(ctx context.Context, o options, ready func(addr string)) (err error) {
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer wg.Wait() // runs last: after cancel and every Close below
	defer cancel()

	// The probe histogram wraps the Prober, so it exists before the Group.
	probes, err := pirprom.NewProbeMetrics(pirprom.DefaultProbeConfig(o.group))
	if err != nil {
		return err
	}
	cfg := discovery.Config{
		Name:    o.group,
		Passive: true,
		Prober:  probes.Instrument(healthcheck.NewRegistry()),
	}
	if o.multicast {
		cfg.Transport, err = multicast.New(multicast.Config{
			Group: netip.AddrPortFrom(multicast.DefaultGroupV4, uint16(o.port)),
		})
		if err != nil {
			return fmt.Errorf("open the multicast transport: %w", err)
		}
	} else {
		lan, err := mem.NewLAN(mem.Config{Loopback: true})
		if err != nil {
			return err
		}
		cfg.Transport = lan.Join()
		closeDemo, err := startDemo(ctx, &wg, lan, o)
		if err != nil {
			return err
		}
		defer closeDemo()
	}

	g, err := discovery.Join(ctx, cfg)
	if err != nil {
		return fmt.Errorf("join group %q: %w", o.group, err)
	}
	defer g.Close()
	// The Collector reads the Group, so it comes after Join.
	metrics, err := pirprom.NewCollector(g, pirprom.Config{Group: o.group, MemberHealth: true})
	if err != nil {
		return err
	}
	defer metrics.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics, probes, collectors.NewGoCollector())
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen for /metrics: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Printf("serve /metrics: %v", err)
		}
	})
	ready(ln.Addr().String())

	<-ctx.Done()
	shut, cancelShut := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShut()
	return srv.Shutdown(shut)
}

// startDemo starts three members on lan, each with a pir TCP health server
// on 127.0.0.1, and makes member-3 unhealthy and healthy again every o.flip.
// The function it returns stops them; ctx stops the flipping.
func startDemo(ctx context.Context, wg *sync.WaitGroup, lan *mem.LAN, o options) (stop func(), err error) {
	var closers []func() error
	stop = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	var servers []*healthcheck.TCPServer
	for i := 1; i <= 3; i++ {
		hs := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
		if err := hs.Start("127.0.0.1:0"); err != nil {
			stop()
			return nil, fmt.Errorf("start a health server: %w", err)
		}
		closers = append(closers, hs.Close)
		servers = append(servers, hs)
		g, err := discovery.Join(ctx, discovery.Config{
			Name:      o.group,
			Self:      discovery.Peer{ID: fmt.Sprintf("member-%d", i), HealthURI: hs.URI()},
			Transport: lan.Join(),
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("join member-%d: %w", i, err)
		}
		closers = append(closers, g.Close)
	}
	if o.flip > 0 {
		wg.Go(func() {
			t := time.NewTicker(o.flip)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					hs := servers[2]
					hs.SetHealthy(!hs.Healthy())
					log.Printf("member-3 healthy: %v", hs.Healthy())
				}
			}
		})
	}
	return stop, nil
}
