package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/nslan"
	"github.com/pirlan/pir/internal/nslan/pircli"
)

// requireMDNSFlags skips t unless the pir binary has the mDNS flags
// ("pir join -mdns", "pir watch -mdns TYPE").
func requireMDNSFlags(t *testing.T) {
	t.Helper()
	if pirPath == "" {
		t.Skip("e2e: no network lab here: " + skipReason)
	}
	out, _ := exec.Command(pirPath, "join", "-h").CombinedOutput()
	if !strings.Contains(string(out), "-mdns") {
		t.Skip("e2e: this pir has no -mdns flag")
	}
}

// Members that join over mDNS meet, a watcher over mDNS lists them, and a
// member that leaves is gone at once for the others (its goodbye is an
// mDNS goodbye: its records with TTL 0).
func TestMDNSJoinAndWatch(t *testing.T) {
	requireMDNSFlags(t)
	l := newLab(t, nslan.Config{Hosts: 3})
	hosts := l.Hosts()
	members := []*pircli.Peer{join(t, hosts[0], "-mdns", "-meta", "role=a"), join(t, hosts[1], "-mdns")}
	seen := requireMesh(t, members, members, nil)
	for o, events := range seen {
		for id, e := range events {
			h := hosts[0]
			if id == peerID(hosts[1]) {
				h = hosts[1]
			}
			assert.Contains(t, []string{h.IPv4.String(), h.IPv6.String()}, hostOf(t, e.HealthURI).String(),
				"%s: %s's health URI %s names its host's address", o.Name(), id, e.HealthURI)
			assert.Equal(t, "healthy", e.Verdict)
		}
	}
	assert.Equal(t, map[string]string{"role": "a"}, seen[members[1]][peerID(hosts[0])].Meta)

	w := watch(t, hosts[2], "-mdns", "pir")
	requireMesh(t, []*pircli.Peer{w}, members, nil)

	from := mark(members[0], w)
	require.NoError(t, members[1].Interrupt())
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	requireSeen(t, ctx, []*pircli.Peer{members[0], w}, from, members[1].ID, pircli.Left, pircli.Goodbye)
	requireOnlyMembers(t, append(members, w), ids(members)...)
}

// zeroconfPublisher publishes one _http._tcp service with python3-zeroconf
// on the namespace's eth0 (IPv4), prints "ready" once registered and
// unregisters on SIGINT. Nothing listens on its port: its presence is what
// mDNS says.
const zeroconfPublisher = `
import signal, socket, subprocess, json, threading
from zeroconf import IPVersion, ServiceInfo, Zeroconf
stop = threading.Event()
signal.signal(signal.SIGINT, lambda *a: stop.set())
addr = [a["local"] for a in json.loads(subprocess.run(["ip", "-j", "addr", "show", "dev", "eth0"],
        capture_output=True, text=True, check=True).stdout)[0]["addr_info"] if a["family"] == "inet"][0]
zc = Zeroconf(interfaces=[addr], ip_version=IPVersion.V4Only)
info = ServiceInfo("_http._tcp.local.", "Intranet._http._tcp.local.", addresses=[socket.inet_aton(addr)],
                   port=8080, properties={"path": "/wiki"}, server="intranet.local.")
zc.register_service(info)
print("ready", flush=True)
stop.wait()
zc.unregister_service(info)
zc.close()
`

// "pir watch -mdns _http._tcp" lists a web server python-zeroconf
// publishes, whether registered before the watch starts (zeroconf's answer
// to its query holds an NSEC record miekg/dns refuses) or after; keeps it
// while it is advertised though nothing listens on its port (neither
// watcher sees it leave until zeroconf's goodbye: the first is probing it
// all the while the second starts and lists it; transport/mdns's
// TestMDNSZeroconfInterop counts 20 probes); and drops it when zeroconf
// says goodbye.
func TestMDNSWatchForeignService(t *testing.T) {
	requireMDNSFlags(t)
	if err := exec.Command("/usr/bin/python3", "-c", "import zeroconf").Run(); err != nil {
		t.Skip("e2e: python3-zeroconf is not installed (Debian: apt-get install python3-zeroconf)")
	}
	l := newLab(t, nslan.Config{Hosts: 3, IPv4: true})
	script := filepath.Join(t.TempDir(), "publish.py")
	require.NoError(t, os.WriteFile(script, []byte(zeroconfPublisher), 0o644))
	before := watch(t, l.Host(0), "-mdns", "_http._tcp", "-wait-probe", "-log", "debug")
	pub, err := l.Host(1).Start("/usr/bin/python3", script)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), meetTimeout)
	defer cancel()
	_, _, err = pub.WaitLine(ctx, 0, func(l nslan.Line) bool { return l.Text == "ready" })
	require.NoError(t, err, pub.Stderr())

	e, err := before.WaitEvent(ctx, 0, func(e pircli.Event) bool { return e.Event == pircli.Joined })
	require.NoError(t, err, "%s's log:\n%s", before.Name(), before.Stderr())
	assert.Regexp(t, `^Intranet-[0-9a-f]{8}$`, e.ID)
	assert.Equal(t, "mdns://"+l.Host(1).IPv4.String()+":8080", e.HealthURI)
	assert.Equal(t, "tcp://"+l.Host(1).IPv4.String()+":8080", e.CommsURI)
	assert.Equal(t, map[string]string{"path": "/wiki"}, e.Meta)
	assert.Equal(t, "healthy", e.Verdict)

	// A watcher started after the registration lists it too.
	after := watch(t, l.Host(2), "-mdns", "_http._tcp", "-wait-probe", "-log", "debug")
	e2, err := after.WaitEvent(ctx, 0, pircli.Is(pircli.Joined, e.ID))
	require.NoError(t, err, "%s's log:\n%s", after.Name(), after.Stderr())
	assert.Equal(t, e.HealthURI, e2.HealthURI)

	// Neither saw it leave meanwhile, though every probe of a TCP connect
	// would have failed.
	for _, w := range []*pircli.Peer{before, after} {
		events, err := w.Events()
		require.NoError(t, err)
		for _, ev := range events {
			assert.NotEqual(t, pircli.Left, ev.Event, "%s: %+v", w.Name(), ev)
		}
	}

	// The goodbye is a step of its own, with the removal bound: the meet
	// above (python's start, two watchers) may take most of meetTimeout on
	// a loaded machine, which left the goodbye no time at all.
	from := []int{before.Len(), after.Len()}
	rctx, rcancel := context.WithTimeout(context.Background(), removeTimeout)
	defer rcancel()
	require.NoError(t, pub.Interrupt())
	for i, w := range []*pircli.Peer{before, after} {
		_, err = w.WaitEvent(rctx, from[i], pircli.Is(pircli.Left, e.ID, pircli.Goodbye))
		require.NoError(t, err, "%s's log:\n%s\npublisher's stderr:\n%s", w.Name(), w.Stderr(), pub.Stderr())
	}
	require.NoError(t, pub.Wait(rctx), pub.Stderr())
}
