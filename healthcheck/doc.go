// Package healthcheck checks whether a peer is alive, by probing the
// health-check URI it announces, and serves that URI for the local peer.
//
// # Probers
//
// A Prober probes one URI and returns nil for a healthy peer, an error
// otherwise. The built-in probers are:
//
//   - TCPProber, for tcp:// URIs: the protocol of the original pir.
//   - UDPProber, for udp:// URIs: the same exchange in datagrams.
//   - HTTPProber, for http:// URIs, and https:// ones when the application
//     gives it a TLS dialer (HTTPConfig.DialTLS): a GET that must end 2xx.
//
// A Registry is a Prober that dispatches on the URI's scheme. NewRegistry
// holds the built-in probers with their default configs (tcp, udp, http);
// Register adds an application's own (a ProberFunc will do) or replaces
// one, for example with a TCPProber of another Timeout, or adds https:
//
//	r := healthcheck.NewRegistry()
//	r.Register("https", healthcheck.NewHTTPProber(healthcheck.HTTPConfig{
//		DialTLS: (&tls.Dialer{Config: cfg}).DialContext, // cfg's roots must vouch for each member's IP
//	}))
//
// A scheme nobody registered fails with ErrUnsupportedScheme.
//
// The package does not link net/http or crypto/tls: together they cost a
// program about 1.5 MiB of resident memory, which every member would pay
// whether or not it probes over HTTP. HTTPProber and HTTPServer speak the
// little of HTTP/1.1 a health check needs themselves, and TLS comes from
// the application's dialer; healthcheck/httphealth serves the HTTP check
// from an application's own net/http server.
//
// Every built-in prober checks that the peer answers as a pir member
// does. NewRegistry holds nothing that would pass a peer without such an
// answer: a TCPConnectProber (any open port passes) and the mdns:// scheme
// of services found over mDNS (which cannot be probed at all) are the
// transport/mdns Conn's. It provides them through the optional
// SchemeProvider interface, and its probers pass only services it found
// itself; a discovery.Group with no Prober of its own registers them.
//
// What an error wraps tells the caller what happened, through errors.Is:
//
//   - ErrUnhealthy: the peer answered, but not as a healthy peer.
//   - os.ErrDeadlineExceeded: the probe ran out of its Timeout.
//   - context.Canceled or context.DeadlineExceeded: the caller's context
//     was done first. A prober checks it before it starts, and gives up
//     at once when it is done during the probe.
//   - ErrInvalidTarget: the URI has no usable host or port.
//   - anything else: the network said no, e.g. syscall.ECONNREFUSED.
//
// Probers are safe for concurrent use and keep nothing between probes: no
// connection, no goroutine. Each Timeout defaults to DefaultTimeout (2s)
// and the context's deadline applies too, whichever is sooner.
//
// On a slow or lossy path the TCP probers start another connection beside
// the first every Retry, and the UDP prober resends its datagram. A caller
// limits that through the context: WithoutRetry asks for one attempt only
// (discovery uses it for peers it has no reason to trust yet), and
// WithAttemptGate has every attempt after the first ask a gate first (a
// rate limit's token, say).
//
// # The probe protocols, byte by byte
//
// tcp://host:port (TCPProber, TCPServer), unchanged from the original pir:
//
//  1. The prober connects to host:port.
//  2. It writes one byte, 0x00.
//  3. The server reads exactly one byte. If it is 0x00 and the server is
//     healthy, the server writes one byte, 0x00. In every case it then
//     closes the connection: one probe per connection.
//  4. The prober reads exactly one byte. 0x00 means healthy. Any other
//     byte, or the connection closing first, means unhealthy
//     (ErrUnhealthy). Silence means a timeout.
//
// udp://host:port (UDPProber, UDPServer):
//
//  1. The prober sends one datagram whose payload is the single byte 0x00,
//     from a socket connected to host:port.
//  2. The server answers a datagram whose payload is exactly 0x00, when
//     healthy, with one datagram whose payload is 0x00, sent to the
//     probe's source address. It ignores every other datagram, and every
//     datagram while unhealthy.
//  3. The prober reads one datagram. A payload of exactly 0x00 means
//     healthy; any other payload means unhealthy. Silence means a
//     timeout; an ICMP port-unreachable means "connection refused". The
//     probe is not resent.
//
// http://host:port/path and https:// (HTTPProber, HTTPServer), HTTP/1.1
// with one request per connection:
//
//  1. The prober connects to host:port (80 by default; for https it has
//     DialTLS connect and make the TLS handshake, 443 by default) and
//     sends the lines "GET /path?query HTTP/1.1", "Host: host[:port]",
//     "User-Agent: pir-healthcheck", "Accept: */*", "Connection: close",
//     each ending in CRLF, then an empty line. An IPv6 host's zone is left
//     out of Host.
//  2. The server reads the request head, at most 8 KiB (a larger one is
//     answered with 431), and answers GET and HEAD on its path (the query
//     aside) with 200 and the body "ok" when healthy, 503 and "unhealthy"
//     when not, HEAD without the body; another path gets 404, another
//     method 405 (with "Allow: GET, HEAD"), a malformed request 400. Every
//     reply carries "Content-Type: text/plain; charset=utf-8",
//     "Cache-Control: no-store", Content-Length and "Connection: close",
//     and the server closes the connection after it.
//  3. The prober reads the status line and header fields (at most 16 KiB,
//     interim 1xx responses included) and up to 4 KiB of the body, then
//     closes the connection (with a reset, as the TCP prober does). Any
//     2xx status means healthy; any other status, or a response that is
//     not HTTP/1.0 or 1.1 or whose head is too large, means unhealthy. A
//     301, 302, 303, 307 or 308 whose Location leads to the same host and
//     port (and not from https to http) is followed with a new
//     connection, at most MaxHTTPRedirects times; any other redirect is
//     the final answer.
//
// In every protocol the URI's host may be an IPv6 literal in brackets,
// with a zone for a link-local address: tcp://[fe80::1%25eth0]:7.
//
// # Servers
//
// TCPServer, UDPServer and HTTPServer answer these probes for the local
// peer. Each is made with a ServerConfig, started once with Start(addr)
// and stopped with Close; URI gives the URI to advertise, built from the
// address actually bound (so "127.0.0.1:0" becomes tcp://127.0.0.1:40215).
// SetHealthy(false) makes a server answer as an unhealthy peer would,
// without closing it; SetHealthy(true) undoes that, and Healthy reports it.
// Check answers in process what a probe would (started, healthy, its
// socket serving): a member that serves its own health gives it to
// discovery.Config.SelfCheck, as pir join does, rather than connecting to
// itself over loopback every HealthInterval.
// An application with an HTTP server of its own serves the HTTP check
// there instead, with healthcheck/httphealth:
//
//	mux.Handle("/healthz", httphealth.Handler(srv.Healthy))
//
// A server bounds the time a connection may take (ServerConfig.ReadTimeout)
// and the number of connections open at once (ServerConfig.MaxConns), so
// that a peer that connects and stays silent costs little.
//
// # Held connections
//
// A health-check server is what a hostile host on the LAN attacks to get
// a member removed: if it holds every connection the server will open,
// the other members' probes fail. The TCPServer and HTTPServer therefore
// count their connections by source address:
//
//   - a connection must send its first byte within FirstByteTimeout
//     (500 ms): a prober sends its probe as soon as it is connected;
//   - a source that Known does not know may hold MaxConnsPerSource (16)
//     connections at once, and such sources together MaxConns less
//     KnownReserve (192 of 256);
//   - when the server is full, a known source's connection takes the
//     place of the oldest unknown one (one that has sent nothing first).
//
// A connection refused, evicted or silent too long is reset, which a
// prober takes as a failed attempt to retry (TCPProber starts another),
// not as an unhealthy reply. Stats counts what the server did.
//
// Known is what makes members known. A discovery.Group answers it with
// Group.Knows (a joined member was heard from that address); since the
// server must start before the Group (the Group announces its URI), hand
// it the Group once there is one:
//
//	var group atomic.Pointer[discovery.Group]
//	hs := healthcheck.NewTCPServer(healthcheck.ServerConfig{
//		Known: func(a netip.Addr) bool {
//			g := group.Load()
//			return g != nil && g.Knows(a)
//		},
//	})
//	if err := hs.Start(":0"); err != nil { ... }
//	g, err := discovery.Join(ctx, discovery.Config{Self: discovery.Peer{HealthURI: hs.URI(), ...}, ...})
//	if err != nil { ... }
//	group.Store(g)
//
// Without Known every source is a stranger: the per-source cap and the
// first-byte deadline still apply, there is no reserve, and an attacker
// with enough addresses can still fill the server. The probes themselves
// are not authenticated (docs/security.md, "Authenticated probes", says
// why).
//
// The UDPServer keeps nothing per source: it reads one datagram at a time
// and answers a probe with a datagram of the same size, so a flood costs
// it one read per datagram and gives no amplification; MaxConns and the
// fields above do not apply to it.
//
// Every method of a server is safe for concurrent use. Start fails with
// ErrServerStarted on a started server and ErrServerClosed on a closed
// one. Close closes the listener and every open connection, and waits for
// every goroutine the server started; it is idempotent and may be called
// before Start.
//
// The package healthchecktest holds the conformance suite every Prober
// should pass.
package healthcheck
