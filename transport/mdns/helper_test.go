package mdns

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
)

// helperEnv makes the test binary run a helper program instead of the
// tests: a pir member or watcher over this transport on one interface of a
// lab host, printing what happens as JSON lines (helperLine). SIGINT makes
// a member leave (a goodbye) and a watcher close; either then exits 0.
const helperEnv = "PIR_MDNS_HELPER"

// helperLine is one line the helper prints.
type helperLine struct {
	Event  string            `json:"event"` // ready, joined, left, updated, health, probed, leaving, done
	ID     string            `json:"id,omitempty"`
	Health string            `json:"health,omitempty"`
	Comms  string            `json:"comms,omitempty"`
	Meta   map[string]string `json:"meta,omitempty"`
	Reason string            `json:"reason,omitempty"`
	Error  string            `json:"error,omitempty"`
	// OK and Failed, in a "probed" line, are the Group's ProbesOK and
	// ProbesFailed, printed whenever either grows (with -probe-interval).
	OK     uint64 `json:"ok,omitempty"`
	Failed uint64 `json:"failed,omitempty"`
}

func helper(args []string) int {
	fs := flag.NewFlagSet("mdns-helper", flag.ContinueOnError)
	mode := fs.String("mode", "member", "member or watch")
	group := fs.String("group", "web", "group name")
	id := fs.String("id", "", "member ID")
	network := fs.String("network", "", "udp4, udp6 or empty for both")
	service := fs.String("service", "", "DNS-SD service type (Config.Service)")
	ifName := fs.String("iface", "eth0", "interface")
	meta := fs.String("meta", "", "metadata k=v,k=v")
	logLevel := fs.String("log", "off", "log level on stderr")
	probeEvery := fs.Duration("probe-interval", 0, "the Group's ProbeInterval (0: its default); when set, print a probed line whenever the probe counts grow")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	say := func(l helperLine) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(l)
	}
	fail := func(err error) int {
		say(helperLine{Event: "error", Error: err.Error()})
		return 1
	}
	log := hclog.NewNullLogger()
	if *logLevel != "off" {
		log = hclog.New(&hclog.LoggerOptions{Level: hclog.LevelFromString(*logLevel), Output: os.Stderr})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tr, err := New(Config{Group: *group, Network: *network, Service: *service, Interfaces: []string{*ifName}, Logger: log})
	if err != nil {
		return fail(err)
	}
	cfg := discovery.Config{Name: *group, Transport: tr, Logger: log, ProbeInterval: *probeEvery}
	if *mode == "watch" {
		cfg.Passive = true // the default Prober: tr's Probers for foreign services
	} else {
		hs := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
		listen := "[::]:0"
		if *network == "udp4" {
			listen = "0.0.0.0:0"
		}
		if err := hs.Start(listen); err != nil {
			return fail(err)
		}
		defer hs.Close()
		m := map[string]string{}
		for _, kv := range strings.Split(*meta, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				m[k] = v
			}
		}
		cfg.Self = discovery.Peer{ID: *id, HealthURI: hs.URI(), Meta: m}
	}
	g, err := discovery.Join(context.Background(), cfg)
	if err != nil {
		return fail(err)
	}
	say(helperLine{Event: "ready", ID: g.Self().ID})
	g.AddListener(func(e discovery.Event) bool {
		l := helperLine{Event: strings.ToLower(e.Type.String()), ID: e.Member.ID, Meta: e.Member.Meta}
		if e.Member.HealthURI != nil {
			l.Health = e.Member.HealthURI.String()
		}
		if e.Member.CommsURI != nil {
			l.Comms = e.Member.CommsURI.String()
		}
		if e.Type == discovery.Left {
			l.Reason = e.Reason.String()
		}
		say(l)
		return true
	})
	if *probeEvery > 0 {
		go func() {
			var ok, failed uint64
			t := time.NewTicker(*probeEvery / 4)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if st := g.Stats(); st.ProbesOK != ok || st.ProbesFailed != failed {
					ok, failed = st.ProbesOK, st.ProbesFailed
					say(helperLine{Event: "probed", OK: ok, Failed: failed})
				}
			}
		}()
	}
	<-ctx.Done()
	if cfg.Passive {
		err = g.Close()
	} else {
		say(helperLine{Event: "leaving"})
		lctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = g.Leave(lctx)
		cancel()
	}
	if err != nil {
		return fail(err)
	}
	say(helperLine{Event: "done"})
	return 0
}
