package mdns

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/nslan"
)

// zeroconfScript drives python3-zeroconf on a lab host and prints JSON
// lines: "ready" once set up, "registering" just before it publishes and
// "registered" after (its probing done), "added" and "removed" as its
// ServiceBrowser sees services come and go, "unregistered" after its
// goodbye. SIGINT ends it: a publisher unregisters first.
//
//	zc_driver.py FAMILY IFACE browse TYPE
//	zc_driver.py FAMILY IFACE publish NAME TYPE PORT K=V...
//	zc_driver.py FAMILY IFACE announce NAME TYPE PORT K=V...
//
// announce publishes as publish does, with nothing listening on PORT.
// FAMILY is 4, 6 or all; it binds zeroconf to IFACE's address or index
// only, as docs NETLAB.md §4 says, so that nothing goes elsewhere.
const zeroconfScript = `
import json, signal, socket, sys, threading, time
from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

def say(**kw):
    kw["t"] = time.time()
    print(json.dumps(kw), flush=True)

family, iface, mode = sys.argv[1], sys.argv[2], sys.argv[3]
# SIGINT is blocked in every thread (those started later inherit the mask)
# and taken by sigwait in the main thread: a handler that set a
# threading.Event could deadlock on the Event's lock when the signal came
# while the main thread held it, and then the script never exited.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
def wait_interrupt():
    signal.sigwait({signal.SIGINT})

def iface_addrs():
    import subprocess
    out = subprocess.run(["ip", "-j", "addr", "show", "dev", iface], capture_output=True, text=True, check=True).stdout
    v4 = v6 = None
    for a in json.loads(out)[0]["addr_info"]:
        if a["family"] == "inet" and v4 is None:
            v4 = a["local"]
        if a["family"] == "inet6" and a.get("scope") == "global" and v6 is None:
            v6 = a["local"]
    return v4, v6

v4, v6 = iface_addrs()
index = socket.if_nametoindex(iface)
if family == "4":
    zc = Zeroconf(interfaces=[v4], ip_version=IPVersion.V4Only)
elif family == "6":
    zc = Zeroconf(interfaces=[index], ip_version=IPVersion.V6Only)
else:
    zc = Zeroconf(interfaces=[v4, index], ip_version=IPVersion.All)

def decode(props):
    return {k.decode("utf-8", "replace"): (None if v is None else v.decode("utf-8", "replace")) for k, v in props.items()}

if mode == "browse":
    def on_change(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Removed:
            say(event="removed", name=name)
            return
        info = zeroconf.get_service_info(service_type, name, timeout=3000)
        if info is None:
            say(event="unresolved", name=name)
            return
        say(event="added" if state_change is ServiceStateChange.Added else "updated", name=name,
            server=info.server, port=info.port, addresses=info.parsed_addresses(), txt=decode(info.properties))
    browser = ServiceBrowser(zc, sys.argv[4], handlers=[on_change])
    say(event="ready")
    wait_interrupt()
    browser.cancel()
else:
    name, type_, port = sys.argv[4], sys.argv[5], int(sys.argv[6])
    props = dict(kv.split("=", 1) for kv in sys.argv[7:])
    if mode == "publish":
        listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        listener.bind(("::", port))
        listener.listen(16)
        def accept():
            while True:
                try:
                    c, _ = listener.accept()
                    c.close()
                except OSError:
                    return
        threading.Thread(target=accept, daemon=True).start()
    addrs = []
    if family in ("4", "all"):
        addrs.append(socket.inet_pton(socket.AF_INET, v4))
    if family in ("6", "all"):
        addrs.append(socket.inet_pton(socket.AF_INET6, v6))
    info = ServiceInfo(type_, name + "." + type_, addresses=addrs, port=port, properties=props,
                       server="zc-" + socket.gethostname().split(".")[0].lower() + "-" + str(port) + ".local.")
    say(event="ready")
    say(event="registering")
    zc.register_service(info)
    say(event="registered")
    wait_interrupt()
    say(event="unregistering")
    zc.unregister_service(info)
    say(event="unregistered")
zc.close()
say(event="done")
`

// zcLine is one line the script prints.
type zcLine struct {
	Event     string            `json:"event"`
	Name      string            `json:"name"`
	Server    string            `json:"server"`
	Port      int               `json:"port"`
	Addresses []string          `json:"addresses"`
	TXT       map[string]string `json:"txt"`
}

// interop is a lab of two hosts, the zeroconf script and this binary as a
// helper, for one address family.
type interop struct {
	t      testing.TB
	lab    *nslan.Lab
	script string
	family string // "4" or "6"
}

// newInterop makes the lab, or skips: it needs root (internal/nslan) and
// python3-zeroconf (Debian: apt-get install python3-zeroconf).
func newInterop(t testing.TB, family string) *interop {
	t.Helper()
	if ok, reason := nslan.Available(); !ok {
		t.Skip("mdns interop: no network lab here: " + reason)
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import zeroconf").Run(); err != nil {
		t.Skip("mdns interop: python3-zeroconf is not installed (Debian: apt-get install python3-zeroconf): ", err)
	}
	l, err := nslan.New(nslan.Config{Hosts: 2, Logf: t.Logf})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, l.Close()) })
	script := filepath.Join(t.TempDir(), "zc_driver.py") // not zeroconf.py: that would shadow the module
	require.NoError(t, os.WriteFile(script, []byte(zeroconfScript), 0o644))
	return &interop{t: t, lab: l, script: script, family: family}
}

func (x *interop) network() string {
	if x.family == "6" {
		return "udp6"
	}
	return "udp4"
}

// addr returns host h's address in the family.
func (x *interop) addr(h *nslan.Host) netip.Addr {
	if x.family == "6" {
		return h.IPv6
	}
	return h.IPv4
}

// zeroconf starts the script on h.
func (x *interop) zeroconf(h *nslan.Host, args ...string) *nslan.Proc {
	x.t.Helper()
	p, err := h.Start("/usr/bin/python3", append([]string{x.script, x.family, "eth0"}, args...)...)
	require.NoError(x.t, err)
	x.t.Cleanup(func() { stopProc(x.t, p) })
	x.waitZC(p, 0, func(l zcLine) bool { return l.Event == "ready" })
	return p
}

// helper starts this binary's helper on h and waits until it is ready.
func (x *interop) helper(h *nslan.Host, args ...string) *nslan.Proc {
	x.t.Helper()
	exe, err := os.Executable()
	require.NoError(x.t, err)
	// At debug level: a wait that fails prints the helper's stderr, and
	// with it what the transport and the Group saw.
	cmd := h.Command(context.Background(), exe, append([]string{"-network", x.network(), "-iface", "eth0", "-log", "debug"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"=1", "GORACE=atexit_sleep_ms=0")
	p, err := h.StartCommand(cmd)
	require.NoError(x.t, err)
	x.t.Cleanup(func() { stopProc(x.t, p) })
	x.waitHelper(p, 0, func(l helperLine) bool { return l.Event == "ready" })
	return p
}

// stopProc interrupts p unless it has exited, and waits for it.
func stopProc(t testing.TB, p *nslan.Proc) {
	select {
	case <-p.Done():
		return
	default:
	}
	_ = p.Interrupt()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		_ = p.Kill()
		t.Errorf("%v; %s", err, procOutput(p))
	}
}

// procOutput is what p printed: its last lines on stdout (for the
// zeroconf script, how far it got) and its stderr.
func procOutput(p *nslan.Proc) string {
	lines := p.Lines()
	var b strings.Builder
	b.WriteString("last stdout lines:\n")
	for _, l := range lines[max(0, len(lines)-5):] {
		b.WriteString(l.Text + "\n")
	}
	b.WriteString("stderr:\n" + p.Stderr())
	return b.String()
}

// waitExit waits for p to exit by itself, with status 0.
func (x *interop) waitExit(p *nslan.Proc) {
	x.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()
	require.NoError(x.t, p.Wait(ctx), "%s", procOutput(p))
}

// interopTimeout bounds every wait: generous, since a test fails only when
// one passes.
const interopTimeout = 20 * time.Second

func (x *interop) waitZC(p *nslan.Proc, from int, match func(zcLine) bool) (zcLine, nslan.Line) {
	x.t.Helper()
	var got zcLine
	l := x.wait(p, from, func(l nslan.Line) bool {
		got = zcLine{}
		return json.Unmarshal([]byte(l.Text), &got) == nil && match(got)
	})
	return got, l
}

func (x *interop) waitHelper(p *nslan.Proc, from int, match func(helperLine) bool) (helperLine, nslan.Line) {
	x.t.Helper()
	var got helperLine
	l := x.wait(p, from, func(l nslan.Line) bool {
		got = helperLine{}
		return json.Unmarshal([]byte(l.Text), &got) == nil && match(got)
	})
	if got.Event == "error" {
		x.t.Fatalf("helper failed: %s", got.Error)
	}
	return got, l
}

func (x *interop) wait(p *nslan.Proc, from int, match func(nslan.Line) bool) nslan.Line {
	x.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()
	_, l, err := p.WaitLine(ctx, from, match)
	require.NoError(x.t, err, "stderr:\n%s", p.Stderr())
	return l
}

// timings are what one round measures.
type timings struct {
	seen, dropped time.Duration
	// seenReady is, for a pir member, the time from its Join's return to
	// zeroconf's "added": seen less the process start.
	seenReady time.Duration
}

// pirToZeroconf starts a pir member of group "web" on h0, waits until
// zeroconf's browser of name browse on h1 resolves it, with the TXT record and address expected, then makes
// it leave and waits until zeroconf drops it. It returns how long each
// took: from the member's start to zeroconf's "added", from the SIGINT
// that makes it leave to zeroconf's "removed".
func (x *interop) pirToZeroconf(round int, browse string) timings {
	x.t.Helper()
	h0, h1 := x.lab.Host(0), x.lab.Host(1)
	browser := x.zeroconf(h1, "browse", browse)
	id := fmt.Sprintf("pir-%s-%d", h0.Name, round)
	member := x.helper(h0, "-mode", "member", "-group", "web", "-id", id, "-meta", "role=test")
	started := member.Started()
	_, ready := x.waitHelper(member, 0, func(l helperLine) bool { return l.Event == "ready" })

	added, at := x.waitZC(browser, 0, func(l zcLine) bool { return l.Event == "added" && strings.HasPrefix(l.Name, id+".") })
	assert.Equal(x.t, id+"._pir._udp.local.", added.Name)
	assert.Equal(x.t, "1", added.TXT["txtvers"])
	assert.Equal(x.t, id, added.TXT["id"])
	assert.Equal(x.t, "web", added.TXT["g"])
	assert.Equal(x.t, "test", added.TXT["m.role"])
	want := x.addr(h0)
	assert.Contains(x.t, added.Addresses, want.String(), "zeroconf resolved the member's host")
	assert.True(x.t, strings.HasPrefix(added.TXT["health"], "tcp://"+added.Server[:len(added.Server)-1]+":"),
		"health %q names the SRV target %q", added.TXT["health"], added.Server)
	assert.Equal(x.t, added.TXT["health"], added.TXT["comms"])
	assert.NotZero(x.t, added.Port)

	from := browser.Len()
	left := time.Now()
	require.NoError(x.t, member.Interrupt())
	_, gone := x.waitZC(browser, from, func(l zcLine) bool { return l.Event == "removed" && l.Name == added.Name })
	x.waitExit(member)
	stopProc(x.t, browser)
	return timings{seen: at.At.Sub(started), dropped: gone.At.Sub(left), seenReady: at.At.Sub(ready.At)}
}

// zeroconfToPir publishes a service with zeroconf on h1, waits until a pir
// watcher on h0 lists it as a healthy member, with its TXT record as
// metadata, then unregisters it and waits until the watcher drops it with
// reason goodbye. It returns how long each took: from zeroconf's
// "registering" to the watcher's "joined", from the SIGINT that makes
// zeroconf unregister to the watcher's "left".
func (x *interop) zeroconfToPir(round int) timings {
	x.t.Helper()
	h0, h1 := x.lab.Host(0), x.lab.Host(1)
	watcher := x.helper(h0, "-mode", "watch", "-group", "web", "-service", "_http._tcp")
	port := 8080 + round
	name := fmt.Sprintf("Zc Web %d", round)
	pub := x.zeroconf(h1, "publish", name, "_http._tcp.local.", fmt.Sprint(port), "path=/x", "k=v")
	_, reg := x.waitZC(pub, 0, func(l zcLine) bool { return l.Event == "registering" })

	joined, at := x.waitHelper(watcher, 0, func(l helperLine) bool { return l.Event == "joined" })
	addr := netip.AddrPortFrom(x.addr(h1), uint16(port)).String()
	assert.Equal(x.t, "mdns://"+addr, joined.Health)
	assert.Equal(x.t, "tcp://"+addr, joined.Comms)
	assert.Equal(x.t, map[string]string{"path": "/x", "k": "v"}, joined.Meta)
	assert.Equal(x.t, foreignID(name, escapeLabel(name)+"._http._tcp.local."), joined.ID)

	from := watcher.Len()
	x.waitZC(pub, 0, func(l zcLine) bool { return l.Event == "registered" })
	leave := time.Now()
	require.NoError(x.t, pub.Interrupt())
	left, gone := x.waitHelper(watcher, from, func(l helperLine) bool { return l.Event == "left" && l.ID == joined.ID })
	assert.Equal(x.t, "goodbye", left.Reason)
	x.waitExit(pub)
	stopProc(x.t, watcher)
	return timings{seen: at.At.Sub(reg.At), dropped: gone.At.Sub(leave)}
}

// zeroconfFirst publishes a service with zeroconf on h1 with nothing
// listening on its port, and only once it is registered starts a pir
// watcher on h0 (probing every 100 ms): the watcher lists it (from
// zeroconf's answer to its query, which holds an NSEC record that
// miekg/dns refuses), keeps it over at least 20 probes with none failed
// and no left event, and drops it on zeroconf's goodbye.
func (x *interop) zeroconfFirst() {
	x.t.Helper()
	h0, h1 := x.lab.Host(0), x.lab.Host(1)
	port := 8180
	name := "Zc Early"
	pub := x.zeroconf(h1, "announce", name, "_http._tcp.local.", fmt.Sprint(port), "path=/early")
	x.waitZC(pub, 0, func(l zcLine) bool { return l.Event == "registered" })

	watcher := x.helper(h0, "-mode", "watch", "-group", "web", "-service", "_http._tcp", "-probe-interval", "100ms")
	joined, _ := x.waitHelper(watcher, 0, func(l helperLine) bool { return l.Event == "joined" })
	id := foreignID(name, escapeLabel(name)+"._http._tcp.local.")
	assert.Equal(x.t, id, joined.ID)
	assert.Equal(x.t, "mdns://"+netip.AddrPortFrom(x.addr(h1), uint16(port)).String(), joined.Health)
	assert.Equal(x.t, map[string]string{"path": "/early"}, joined.Meta)

	from := watcher.Len()
	probed, _ := x.waitHelper(watcher, from, func(l helperLine) bool { return l.Event == "probed" && (l.OK >= 20 || l.Failed > 0) })
	assert.Zero(x.t, probed.Failed, "probes of a service nobody listens on failed")
	for _, l := range watcher.Lines()[from:] {
		var hl helperLine
		if json.Unmarshal([]byte(l.Text), &hl) == nil && hl.Event == "left" {
			x.t.Errorf("the service left while advertised: %s", l.Text)
		}
	}

	from = watcher.Len()
	require.NoError(x.t, pub.Interrupt())
	left, _ := x.waitHelper(watcher, from, func(l helperLine) bool { return l.Event == "left" && l.ID == id })
	assert.Equal(x.t, "goodbye", left.Reason)
	x.waitExit(pub)
	stopProc(x.t, watcher)
}

// A pir member shows in python-zeroconf's browser, resolved, with its TXT
// record, and its Leave removes it; a service zeroconf publishes shows as a
// member of a pir watcher, whether registered before the watcher starts or
// after, and whether or not anything listens on its port, and zeroconf's
// goodbye removes it. Over IPv4 and
// over IPv6, on two hosts of a lab.
func TestMDNSZeroconfInterop(t *testing.T) {
	for _, family := range []string{"4", "6"} {
		t.Run("IPv"+family, func(t *testing.T) {
			x := newInterop(t, family)
			t.Run("zeroconf sees pir", func(t *testing.T) {
				x.t = t
				tm := x.pirToZeroconf(0, "_pir._udp.local.")
				t.Logf("zeroconf saw the member %v after it started, dropped it %v after SIGINT", tm.seen, tm.dropped)
			})
			t.Run("zeroconf browses the group", func(t *testing.T) {
				x.t = t
				x.pirToZeroconf(1, "_web._sub._pir._udp.local.")
			})
			t.Run("pir sees zeroconf", func(t *testing.T) {
				x.t = t
				tm := x.zeroconfToPir(0)
				t.Logf("pir saw the service %v after zeroconf began registering, dropped it %v after SIGINT", tm.seen, tm.dropped)
			})
			t.Run("pir sees zeroconf registered before, without a listener", func(t *testing.T) {
				x.t = t
				x.zeroconfFirst()
			})
		})
	}
}

// BenchmarkZeroconfInterop measures, over 5 rounds per address family,
// the medians of: the time for zeroconf to see a pir member (from the
// start of its process, and from the return of its Join, which is when
// its probing starts), for pir to see a zeroconf service (from the start of
// zeroconf's registration, which probes for about 0.8 s), and for each to
// drop the other after its goodbye. Run it once:
//
//	go test -run '^$' -bench ZeroconfInterop -benchtime 1x ./transport/mdns/
func BenchmarkZeroconfInterop(b *testing.B) {
	const rounds = 5
	for _, family := range []string{"4", "6"} {
		b.Run("IPv"+family, func(b *testing.B) {
			x := newInterop(b, family)
			for b.Loop() {
				var zcSees, zcSeesReady, zcDrops, pirSees, pirDrops []time.Duration
				for r := range rounds {
					t1 := x.pirToZeroconf(r, "_pir._udp.local.")
					zcSees, zcDrops = append(zcSees, t1.seen), append(zcDrops, t1.dropped)
					zcSeesReady = append(zcSeesReady, t1.seenReady)
					t2 := x.zeroconfToPir(r)
					pirSees, pirDrops = append(pirSees, t2.seen), append(pirDrops, t2.dropped)
				}
				for _, m := range []struct {
					name string
					d    []time.Duration
				}{{"zc-sees-pir", zcSees}, {"zc-sees-pir-from-join", zcSeesReady}, {"zc-drops-pir", zcDrops}, {"pir-sees-zc", pirSees}, {"pir-drops-zc", pirDrops}} {
					b.ReportMetric(float64(median(m.d))/1e6, "ms-"+m.name)
					b.Logf("IPv%s %s: median %v of %v", family, m.name, median(m.d), m.d)
				}
			}
		})
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
