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

	"github.com/pirlan/pir/internal/lab"
	"github.com/pirlan/pir/internal/lab/pircli"
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
	l := newLab(t, lab.Config{Hosts: 3})
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
// on the namespace's eth0 (IPv4), serves TCP on its port, prints "ready"
// once registered and unregisters on SIGINT.
const zeroconfPublisher = `
import signal, socket, subprocess, json, threading
from zeroconf import IPVersion, ServiceInfo, Zeroconf
stop = threading.Event()
signal.signal(signal.SIGINT, lambda *a: stop.set())
addr = [a["local"] for a in json.loads(subprocess.run(["ip", "-j", "addr", "show", "dev", "eth0"],
        capture_output=True, text=True, check=True).stdout)[0]["addr_info"] if a["family"] == "inet"][0]
ln = socket.socket(); ln.bind((addr, 8080)); ln.listen(8)
threading.Thread(target=lambda: [ln.accept()[0].close() for _ in iter(int, 1)], daemon=True).start()
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
// publishes, probed healthy by a TCP connect, and drops it when zeroconf
// says goodbye.
func TestMDNSWatchForeignService(t *testing.T) {
	requireMDNSFlags(t)
	if err := exec.Command("/usr/bin/python3", "-c", "import zeroconf").Run(); err != nil {
		t.Skip("e2e: python3-zeroconf is not installed (Debian: apt-get install python3-zeroconf)")
	}
	l := newLab(t, lab.Config{Hosts: 2, IPv4: true})
	script := filepath.Join(t.TempDir(), "publish.py")
	require.NoError(t, os.WriteFile(script, []byte(zeroconfPublisher), 0o644))
	w := watch(t, l.Host(0), "-mdns", "_http._tcp", "-wait-probe")
	pub, err := l.Host(1).Start("/usr/bin/python3", script)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), meetTimeout)
	defer cancel()
	_, _, err = pub.WaitLine(ctx, 0, func(l lab.Line) bool { return l.Text == "ready" })
	require.NoError(t, err, pub.Stderr())

	e, err := w.WaitEvent(ctx, 0, func(e pircli.Event) bool { return e.Event == pircli.Joined })
	require.NoError(t, err)
	assert.Regexp(t, `^Intranet-[0-9a-f]{8}$`, e.ID)
	assert.Equal(t, "tcpconnect://"+l.Host(1).IPv4.String()+":8080", e.HealthURI)
	assert.Equal(t, "tcp://"+l.Host(1).IPv4.String()+":8080", e.CommsURI)
	assert.Equal(t, map[string]string{"path": "/wiki"}, e.Meta)
	assert.Equal(t, "healthy", e.Verdict)

	from := w.Len()
	require.NoError(t, pub.Interrupt())
	_, err = w.WaitEvent(ctx, from, pircli.Is(pircli.Left, e.ID, pircli.Goodbye))
	require.NoError(t, err)
	require.NoError(t, pub.Wait(ctx), pub.Stderr())
}
