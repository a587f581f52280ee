package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"
	"golang.org/x/net/netutil"

	"github.com/pirlan/pir/agent"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/internal/cli"
)

// Bounds on the agent's servers. A DNS query over TCP and an HTTP request
// each hold a connection; beyond these, new connections wait in the
// kernel's backlog until one closes. Idle connections are closed, and a
// client must send its request headers within httpHeaderTimeout.
const (
	maxDNSConns       = 64
	maxHTTPConns      = 256
	httpHeaderTimeout = 10 * time.Second
	httpIdleTimeout   = time.Minute
	leaveTimeout      = 2 * time.Second
	serverStopTimeout = 5 * time.Second
)

// agentOpts is a pir-agent command line, checked.
type agentOpts struct {
	nf       cli.NetFlags
	groups   []string // sorted, every group watched: -group's and -service's
	dnsAddr  string   // "" for none
	httpAddr string   // "" for none
	public   bool     // the HTTP address is not loopback
	domain   string
	ttl      uint32
	services []*service
	interval time.Duration // -check-interval
	timeout  time.Duration // -check-timeout
}

// service is a -service: a member the agent announces on a local
// service's behalf, its health the -check's.
type service struct {
	group    string
	uri      *url.URL // as given
	announce *url.URL // the comms URI announced: loopback made unspecified
	check    check
	checkArg string // the -check value, "" for the default
}

// pairsFlag is a repeatable flag of group=value pairs.
type pairsFlag struct {
	pairs [][2]string
}

func (p *pairsFlag) String() string { return fmt.Sprint(p.pairs) }

func (p *pairsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(k) == "" || v == "" {
		return errors.New("want group=value")
	}
	p.pairs = append(p.pairs, [2]string{strings.TrimSpace(k), v})
	return nil
}

const agentUsage = `Usage: pir-agent [flags]

Serve groups to programs in any language: answer DNS queries about their
members (SRV, A, AAAA, TXT under -domain) and an HTTP API (JSON, blocking
queries, Server-Sent Events) with a live page at /, until interrupted. The
agent watches each group as pir watch does, without announcing itself; with
-service it also joins a group as a member on a local service's behalf,
answering probes only while the service's -check passes. On SIGINT or SIGTERM
it leaves every group (a goodbye for each -service) and stops its servers.

  pir-agent -group web,db
  dig @127.0.0.1 -p 8600 web.pir. SRV
  curl http://127.0.0.1:8500/v1/groups/web/members
  pir-agent -service web=tcp://127.0.0.1:8080 -check web=http://127.0.0.1:8080/healthz

A -check runs every -check-interval, one run at a time, each bounded by
-check-timeout; probes are answered from its last result and never start a
check, so a flood of probes runs nothing. Its forms: tcp (the default: a TCP
connect to the service URI's host and port), an http:// or https:// URL (a GET;
2xx is healthy, redirects not followed), exec:COMMAND ARGS (exit status 0 is
healthy; words split as a shell would, quotes kept, nothing expanded, no shell
unless you name one: 'exec:/bin/sh -c "curl -f localhost:8080"'), none (healthy
while the agent runs). A service URI on loopback or 0.0.0.0/[::] is announced
with each interface's own address. See docs/agent.md.

`

// parseAgent parses and checks a pir-agent command line before anything
// is opened.
func parseAgent(args []string, stdout io.Writer) (*agentOpts, error) {
	fs := flag.NewFlagSet("pir-agent", flag.ContinueOnError)
	o := &agentOpts{}
	o.nf.Register(fs)
	fs.Lookup("group").Usage = "comma-separated names of the groups to serve (without -group but with -service: the -service groups only)"
	fs.Lookup("json").Usage = "print membership events as one JSON object per line, with a \"group\" field"
	dnsAddr := fs.String("dns", "127.0.0.1:8600", "address of the DNS server, UDP and TCP (\"\" for none); one that is not loopback needs -public")
	httpAddr := fs.String("http", "127.0.0.1:8500", "address of the HTTP API and page (\"\" for none); one that is not loopback needs -public")
	public := fs.Bool("public", false, "allow -dns and -http addresses that are not loopback: other hosts may query them (HTTP then refuses cross-origin browser requests)")
	domain := fs.String("domain", "pir.", "DNS domain the groups are served under: GROUP.DOMAIN, ID.GROUP.DOMAIN")
	ttl := fs.Uint("ttl", 0, "TTL of the DNS answers, in seconds")
	var services, checks pairsFlag
	fs.Var(&services, "service", "group=URI: join group as a member on behalf of the local service at URI (its comms URI), one per group (repeatable)")
	fs.Var(&checks, "check", "group=CHECK: the health check of group's -service: tcp, none, http(s)://URL or exec:COMMAND ARGS (default tcp; repeatable)")
	fs.DurationVar(&o.interval, "check-interval", time.Second, "time between the end of one -check run and the start of the next")
	fs.DurationVar(&o.timeout, "check-timeout", 2*time.Second, "time a -check run may take before it counts as failed (an exec check's process group is killed)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), agentUsage)
		fs.PrintDefaults()
	}
	if err := cli.ParseFlags(fs, args, stdout); err != nil {
		return nil, err
	}
	set := cli.SetFlags(fs)
	bad := func(format string, args ...any) error { return cli.UsageErrorf(fs.Name(), false, format, args...) }

	// The groups: -group's, and each -service's. The agent serves them
	// under DNS names, which are case-insensitive: two names that differ
	// only in case cannot both be served.
	var groups []string
	same := func(name string) func(string) bool {
		return func(g string) bool { return strings.EqualFold(g, name) }
	}
	if set["group"] || len(services.pairs) == 0 {
		for _, s := range strings.Split(o.nf.Group, ",") {
			name := strings.TrimSpace(s)
			if err := cli.CheckGroupName(name); err != nil {
				return nil, bad("-group %q: %v", name, err)
			}
			if i := slices.IndexFunc(groups, same(name)); i >= 0 {
				return nil, bad("-group %q: %q and %q are one name to DNS", o.nf.Group, groups[i], name)
			}
			groups = append(groups, name)
		}
	}
	for _, p := range services.pairs {
		group, raw := p[0], p[1]
		if err := cli.CheckGroupName(group); err != nil {
			return nil, bad("-service %q: group %q: %v", group+"="+raw, group, err)
		}
		if slices.ContainsFunc(o.services, func(s *service) bool { return strings.EqualFold(s.group, group) }) {
			return nil, bad("-service: group %q has two; the agent announces one service per group", group)
		}
		u, err := url.Parse(raw)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, bad("-service %q: want group=URI, the URI with a scheme and a host, e.g. web=tcp://127.0.0.1:8080", group+"="+raw)
		}
		if u.User != nil {
			return nil, bad("-service %q: the URI carries userinfo (user:password@), which every host on the LAN would read", group+"="+u.Redacted())
		}
		o.services = append(o.services, &service{group: group, uri: u, announce: announced(u)})
		switch i := slices.IndexFunc(groups, same(group)); {
		case i < 0:
			groups = append(groups, group)
		case groups[i] != group:
			return nil, bad("-service %q: group %q and -group's %q are one name to DNS", group+"="+raw, group, groups[i])
		}
	}
	slices.Sort(groups)
	o.groups = groups
	for _, p := range checks.pairs {
		group, spec := p[0], p[1]
		i := slices.IndexFunc(o.services, func(s *service) bool { return strings.EqualFold(s.group, group) })
		if i < 0 {
			return nil, bad("-check %q: no -service for group %q", group+"="+spec, group)
		}
		if o.services[i].checkArg != "" {
			return nil, bad("-check: group %q has two", group)
		}
		o.services[i].checkArg = spec
	}
	for _, s := range o.services {
		c, err := parseCheck(s.checkArg, s.uri)
		if err != nil {
			if s.checkArg != "" {
				return nil, bad("-check %q: %v", s.group+"="+s.checkArg, err)
			}
			return nil, bad("-service %q: %v", s.group+"="+s.uri.String(), err)
		}
		s.check = c
	}
	if len(o.services) == 0 {
		for _, f := range []string{"check-interval", "check-timeout"} {
			if set[f] {
				return nil, bad("-%s does nothing without -service", f)
			}
		}
	}
	if o.interval <= 0 {
		return nil, bad("-check-interval %v: want more than 0", o.interval)
	}
	if o.timeout <= 0 {
		return nil, bad("-check-timeout %v: want more than 0", o.timeout)
	}

	// The shared flags, the group name checked above.
	nf := o.nf
	nf.Group = groups[0]
	if err := nf.Check(fs.Name(), set, false); err != nil {
		return nil, err
	}

	// Where to serve.
	o.dnsAddr, o.httpAddr = *dnsAddr, *httpAddr
	if o.dnsAddr == "" && o.httpAddr == "" {
		return nil, bad("-dns and -http are both empty: nothing to serve")
	}
	loopback := true
	for _, l := range []struct{ flag, addr string }{{"dns", o.dnsAddr}, {"http", o.httpAddr}} {
		if l.addr == "" {
			continue
		}
		lo, err := checkListenAddr(l.addr)
		if err != nil {
			return nil, bad("-%s %q: %v", l.flag, l.addr, err)
		}
		if !lo && !*public {
			return nil, bad("-%s %q is not a loopback address: add -public to serve other hosts", l.flag, l.addr)
		}
		if l.flag == "http" {
			o.public = !lo
		}
		loopback = loopback && lo
	}
	if *public && loopback {
		return nil, bad("-public does nothing: -dns and -http are loopback addresses")
	}
	if _, ok := dns.IsDomainName(*domain); !ok || *domain == "" || *domain == "." {
		return nil, bad("-domain %q: not a domain name", *domain)
	}
	o.domain = dns.Fqdn(*domain)
	if *ttl > math.MaxInt32 {
		return nil, bad("-ttl %d: want 0 to %d", *ttl, math.MaxInt32)
	}
	o.ttl = uint32(*ttl)
	return o, nil
}

// checkListenAddr checks a -dns or -http address and reports whether it is
// a loopback one: localhost or a loopback IP address. An empty host (every
// address) is not.
func checkListenAddr(addr string) (loopback bool, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, errors.New("want host:port, e.g. 127.0.0.1:8500")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return false, errors.New("want a port from 0 to 65535")
	}
	if host == "localhost" {
		return true, nil
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback(), nil
}

// announced is the comms URI announced for the service at u: a loopback
// host (localhost too) becomes the unspecified address of its family, which the Group
// announces on each link as that link's own address (as it does for a
// health server listening on every address).
func announced(u *url.URL) *url.URL {
	c := *u
	host := "0.0.0.0"
	if u.Hostname() != "localhost" {
		a, err := netip.ParseAddr(u.Hostname())
		if err != nil || !a.IsLoopback() {
			return &c
		}
		if a.Is6() && !a.Is4In6() {
			host = "::"
		}
	}
	if p := u.Port(); p != "" {
		c.Host = net.JoinHostPort(host, p)
	} else if host == "::" {
		c.Host = "[::]"
	} else {
		c.Host = host
	}
	return &c
}

func agentCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseAgent(args, stdout)
	if err != nil {
		return err
	}
	return runAgent(ctx, o, stdout, stderr)
}

// runAgent runs the agent o describes until ctx is done.
func runAgent(ctx context.Context, o *agentOpts, stdout, stderr io.Writer) error {
	log := o.nf.Logger(stderr)
	a, err := agent.New(agent.Config{Domain: o.domain, TTL: o.ttl, Public: o.public, Logger: log.Named("agent")})
	if err != nil {
		if errors.Is(err, agent.ErrInvalidConfig) {
			return cli.UsageErrorf("pir-agent", false, "%s", cli.Printable(err.Error()))
		}
		return err
	}
	srv, err := listen(o, a, log)
	if err != nil {
		return errors.Join(err, a.Close())
	}
	out := cli.NewPrinter(stdout, o.nf.JSON)
	r := &agentRun{agent: a, srv: srv}
	checks, stopChecks := context.WithCancel(context.Background())
	r.stopChecks = stopChecks
	if err := r.start(ctx, checks, o, out, log, stderr); err != nil {
		return errors.Join(err, r.stop())
	}

	var where []string
	if o.dnsAddr != "" {
		where = append(where, fmt.Sprintf("DNS on %s (udp, tcp) under %s", srv.dnsAddr, o.domain))
	}
	if o.httpAddr != "" {
		where = append(where, fmt.Sprintf("HTTP on http://%s/", srv.httpAddr))
	}
	quoted := make([]string, len(o.groups))
	for i, g := range o.groups {
		quoted[i] = strconv.Quote(g)
	}
	out.Say("agent serving groups %s on port %d: %s", cli.Printable(strings.Join(quoted, ", ")), o.nf.Port, strings.Join(where, ", "))
	select {
	case <-ctx.Done():
	case <-out.Failed:
	case <-cli.ReaderGone(ctx, stdout):
	case err = <-r.served:
		err = fmt.Errorf("serving: %w", err)
	}
	err = errors.Join(err, r.stop())
	out.Say("agent stopped")
	return errors.Join(err, cli.WriteErr(out))
}

// agentRun is what a running agent has started, for stop.
type agentRun struct {
	agent      *agent.Agent
	srv        *agentServers
	served     <-chan error // the servers' first error
	groups     []*discovery.Group
	health     []*healthcheck.TCPServer
	stopChecks context.CancelFunc
	checks     sync.WaitGroup
}

// start joins o's groups, the services' too, and starts serving.
func (r *agentRun) start(ctx, checks context.Context, o *agentOpts, out *cli.Printer, log hclog.Logger, stderr io.Writer) error {
	for _, name := range o.groups {
		g, err := watchGroup(ctx, o, name, log, stderr)
		if err != nil {
			return err
		}
		r.groups = append(r.groups, g)
		if err := r.agent.Watch(g); err != nil {
			return err
		}
		g.AddListener(func(e discovery.Event) bool {
			out.GroupEvent(name, e)
			return true
		})
	}
	for _, s := range o.services {
		g, hs, err := joinService(ctx, o, s, out, log, stderr)
		if hs != nil {
			r.health = append(r.health, hs)
		}
		if err != nil {
			return err
		}
		r.groups = append(r.groups, g)
		r.checks.Go(func() {
			healthy := hs.Healthy()
			checkLoop(checks, s.check, o.interval, o.timeout, func(err error) {
				if (err == nil) != healthy {
					healthy = err == nil
					hs.SetHealthy(healthy)
					sayCheck(out, s, err)
				}
			})
		})
	}
	r.served = r.srv.serve()
	return nil
}

// stop leaves every group (the services' members say goodbye while their
// health servers still answer), stops the checks and health servers, ends
// the agent's blocking queries and event streams, and stops its servers.
func (r *agentRun) stop() error {
	errs := []error{leaveAll(r.groups)}
	r.stopChecks()
	r.checks.Wait()
	for _, hs := range r.health {
		errs = append(errs, hs.Close())
	}
	errs = append(errs, r.agent.Close(), r.srv.close())
	return errors.Join(errs...)
}

// watchGroup joins group name as a watcher, as pir watch does, except that
// a member is listed only after its first successful probe (as with
// pir watch -wait-probe): the agent answers for members that answer.
func watchGroup(ctx context.Context, o *agentOpts, name string, log hclog.Logger, stderr io.Writer) (*discovery.Group, error) {
	nf := o.nf
	nf.Group = name
	cfg, err := nf.GroupConfig(log.Named(name), stderr)
	if err != nil {
		return nil, err
	}
	adv := cli.NewAdviser(stderr, name, nf.KeyFile)
	adv.Siblings = o.groups
	tr, err := nf.Transport(log, stderr)
	if err != nil {
		return nil, err
	}
	cfg.Passive, cfg.Transport, cfg.Codec = true, adv.Transport(tr), adv.Codec(cfg.Codec)
	cfg.Prober = adv.Prober(healthcheck.NewRegistry())
	g, err := discovery.Join(ctx, cfg)
	if err != nil {
		return nil, cli.ConfigError("pir-agent", err)
	}
	return g, nil
}

// joinService joins s's group as a member on the service's behalf, with a
// health server of its own that answers as the check last said. The
// check runs once first, so that the first probe already has its answer.
// It returns the health server, to close, even when the join fails.
func joinService(ctx context.Context, o *agentOpts, s *service, out *cli.Printer, log hclog.Logger, stderr io.Writer) (*discovery.Group, *healthcheck.TCPServer, error) {
	nf := o.nf
	nf.Group = s.group
	var group atomic.Pointer[discovery.Group]
	hs := healthcheck.NewTCPServer(healthcheck.ServerConfig{
		Known: func(a netip.Addr) bool { g := group.Load(); return g != nil && g.Knows(a) },
	})
	checkErr := runCheck(ctx, s.check, o.timeout)
	hs.SetHealthy(checkErr == nil)
	if err := hs.Start(nf.HealthListenAddr()); err != nil {
		return nil, hs, fmt.Errorf("-service %s: health-check server: %w", s.group, err)
	}
	cfg, err := nf.GroupConfig(log.Named(s.group+".service"), stderr)
	if err != nil {
		return nil, hs, err
	}
	adv := cli.NewAdviser(stderr, s.group, nf.KeyFile)
	adv.Siblings = o.groups
	tr, err := nf.Transport(log, stderr)
	if err != nil {
		return nil, hs, err
	}
	cfg.Self = discovery.Peer{HealthURI: hs.URI(), CommsURI: s.announce}
	cfg.Transport, cfg.Codec = adv.Transport(tr), adv.Codec(cfg.Codec)
	cfg.Prober = adv.Prober(healthcheck.NewRegistry())
	g, err := discovery.Join(ctx, cfg)
	if err != nil {
		return nil, hs, cli.ConfigError("pir-agent", err)
	}
	group.Store(g)
	out.Say("%s: announcing service %s as %s, comms %s, health %s, check %s",
		cli.Printable(s.group), cli.Printable(s.uri.String()), g.Self().ID,
		cli.ProbedAt(s.announce, tr, nf.Only4), cli.ProbedAt(hs.URI(), tr, nf.Only4), cli.Printable(s.check.what))
	sayCheck(out, s, checkErr)
	return g, hs, nil
}

// sayCheck tells what a check's result means for the probes.
func sayCheck(out *cli.Printer, s *service, err error) {
	if err != nil {
		out.Say("%s: check failed (%s): probes answered unhealthy", cli.Printable(s.group), cli.Printable(err.Error()))
		return
	}
	out.Say("%s: check passed: probes answered healthy", cli.Printable(s.group))
}

// leaveAll leaves every group at once: a goodbye from each service's
// member, bounded by leaveTimeout.
func leaveAll(groups []*discovery.Group) error {
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() {
			if err := g.Leave(ctx); err != nil {
				errs[i] = fmt.Errorf("leaving group %q: %w", g.Name(), err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// agentServers are the agent's DNS (UDP and TCP) and HTTP servers, their
// sockets open.
type agentServers struct {
	dnsAddr, httpAddr string // as bound
	udp, tcp          *dns.Server
	http              *http.Server
	httpLn            net.Listener
	serving           bool
	wg                sync.WaitGroup
}

// listen opens the sockets o's servers need, so that an address in use is
// reported before any group is joined.
func listen(o *agentOpts, a *agent.Agent, log hclog.Logger) (*agentServers, error) {
	s := &agentServers{}
	if o.dnsAddr != "" {
		pc, err := net.ListenPacket("udp", o.dnsAddr)
		if err != nil {
			return nil, fmt.Errorf("-dns: %w", err)
		}
		// TCP on the same address and port (the one bound, for port 0).
		bound := pc.LocalAddr().(*net.UDPAddr)
		s.dnsAddr = net.JoinHostPort(bound.IP.String(), strconv.Itoa(bound.Port))
		ln, err := net.Listen("tcp", s.dnsAddr)
		if err != nil {
			_ = pc.Close()
			return nil, fmt.Errorf("-dns: %w", err)
		}
		h := a.DNS()
		s.udp = &dns.Server{Net: "udp", PacketConn: pc, Handler: h, MsgAcceptFunc: agent.AcceptQueries}
		s.tcp = &dns.Server{Net: "tcp", Listener: netutil.LimitListener(ln, maxDNSConns), Handler: h, MsgAcceptFunc: agent.AcceptQueries}
	}
	if o.httpAddr != "" {
		ln, err := net.Listen("tcp", o.httpAddr)
		if err != nil {
			if s.udp != nil {
				_ = s.udp.PacketConn.Close()
				_ = s.tcp.Listener.Close()
			}
			return nil, fmt.Errorf("-http: %w", err)
		}
		s.httpAddr = ln.Addr().String()
		s.httpLn = netutil.LimitListener(ln, maxHTTPConns)
		s.http = &http.Server{
			Handler:           a.HTTP(),
			ReadHeaderTimeout: httpHeaderTimeout,
			IdleTimeout:       httpIdleTimeout,
			MaxHeaderBytes:    8 << 10,
			ErrorLog:          log.Named("http").StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
		}
	}
	return s, nil
}

// serve starts serving and returns once the DNS servers have started; the
// channel gets the error of a server that stopped on its own.
func (s *agentServers) serve() <-chan error {
	errc := make(chan error, 3)
	s.serving = true
	var started sync.WaitGroup
	for _, d := range []*dns.Server{s.udp, s.tcp} {
		if d == nil {
			continue
		}
		started.Add(1)
		var once sync.Once
		d.NotifyStartedFunc = func() { once.Do(started.Done) }
		s.wg.Go(func() {
			if err := d.ActivateAndServe(); err != nil {
				errc <- fmt.Errorf("DNS %s: %w", d.Net, err)
			}
			once.Do(started.Done)
		})
	}
	if s.http != nil {
		s.wg.Go(func() {
			if err := s.http.Serve(s.httpLn); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("HTTP: %w", err)
			}
		})
	}
	started.Wait()
	return errc
}

// close stops the servers, or closes their sockets if they never served.
// Blocking queries and event streams have ended with the agent's Close,
// which runs first; what is left gets serverStopTimeout.
func (s *agentServers) close() error {
	if !s.serving {
		if s.udp != nil {
			_ = s.udp.PacketConn.Close()
			_ = s.tcp.Listener.Close()
		}
		if s.http != nil {
			_ = s.httpLn.Close()
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), serverStopTimeout)
	defer cancel()
	var errs []error
	for _, d := range []*dns.Server{s.udp, s.tcp} {
		// A server that stopped on its own says it is not started: its
		// error went to serve's channel.
		if d != nil && d.ShutdownContext(ctx) != nil && ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("stopping DNS %s: %w", d.Net, ctx.Err()))
		}
	}
	if s.http != nil {
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping HTTP: %w", err))
			_ = s.http.Close()
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}
