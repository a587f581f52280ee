package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/nslan"
	"github.com/pirlan/pir/internal/nslan/pircli"
)

// avahiTools are the programs TestMDNSAvahiInterop runs: Debian's
// avahi-daemon, avahi-utils and dbus-daemon, and util-linux's unshare and
// mount.
var avahiTools = []string{"avahi-daemon", "avahi-browse", "avahi-publish", "dbus-daemon", "unshare", "mount"}

// avahiConf configures an avahi-daemon on a lab host: eth0 only, no
// wide-area DNS, nothing published about the host but its addresses.
const avahiConf = `[server]
use-ipv4=yes
use-ipv6=yes
allow-interfaces=eth0
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-addresses=yes
publish-hinfo=no
publish-workstation=no
publish-domain=no
`

// busConf configures a private system bus at the socket %s: avahi-daemon
// and its tools talk over D-Bus, and the machine's own bus (if it has one)
// is none of the test's business.
const busConf = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`

// avahi is an avahi-daemon running on one lab host with a bus of its own.
type avahi struct {
	h   *nslan.Host
	env []string // the environment of its tools: the bus's address
}

// startAvahi starts a dbus-daemon and an avahi-daemon on h and waits until
// avahi has started. avahi-daemon runs in a mount namespace of its own
// with an empty /run, so that its PID file and socket are its own even
// where the machine runs an avahi-daemon too.
func startAvahi(t *testing.T, h *nslan.Host) *avahi {
	t.Helper()
	dir := t.TempDir()
	bus := filepath.Join(dir, "bus")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bus.conf"), []byte(fmt.Sprintf(busConf, bus)), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "avahi.conf"), []byte(avahiConf), 0o644))
	a := &avahi{h: h, env: append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path="+bus)}

	ctx, cancel := context.WithTimeout(context.Background(), meetTimeout)
	defer cancel()
	d := a.start(t, "dbus-daemon", "--config-file="+filepath.Join(dir, "bus.conf"), "--nofork", "--print-address")
	_, _, err := d.WaitLine(ctx, 0, func(l nslan.Line) bool { return strings.HasPrefix(l.Text, "unix:") })
	require.NoError(t, err, "dbus-daemon: %s", d.Stderr())

	daemon := a.start(t, "unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
		`mount -t tmpfs tmpfs /run && mkdir /run/avahi-daemon && exec avahi-daemon --file="$1" --no-drop-root --no-chroot --no-rlimits`,
		"sh", filepath.Join(dir, "avahi.conf"))
	_, _, err = daemon.WaitLine(ctx, 0, func(l nslan.Line) bool { return strings.HasPrefix(l.Text, "Server startup complete.") })
	require.NoError(t, err, "avahi-daemon: %s", daemon.Stderr())
	return a
}

// start runs name with args on a's host, with the bus's address, its
// stderr among its stdout lines. The test's end stops it.
func (a *avahi) start(t *testing.T, name string, args ...string) *nslan.Proc {
	t.Helper()
	cmd := a.h.Command(context.Background(), "/bin/sh", append([]string{"-c", `exec "$@" 2>&1`, "sh", name}, args...)...)
	cmd.Env = a.env
	p, err := a.h.StartCommand(cmd)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Kill() })
	return p
}

// avahiService is one line of "avahi-browse -p -r": an instance found
// (+), resolved (=) or gone (-).
type avahiService struct {
	Event, Iface, Family, Name, Type string
	Host, Addr                       string // resolved only
	Port                             int
	TXT                              []string
}

// parseAvahi parses a line of "avahi-browse -p -r"; ok is false for
// another line.
func parseAvahi(line string) (s avahiService, ok bool) {
	f := strings.SplitN(line, ";", 10)
	if len(f) < 6 || !slices.Contains([]string{"+", "=", "-"}, f[0]) {
		return s, false
	}
	s = avahiService{Event: f[0], Iface: f[1], Family: f[2], Name: f[3], Type: f[4]}
	if f[0] != "=" {
		return s, true
	}
	if len(f) != 10 {
		return s, false
	}
	s.Host, s.Addr = f[6], f[7]
	s.Port, _ = strconv.Atoi(f[8])
	if txt := strings.TrimSpace(f[9]); txt != "" {
		s.TXT = strings.Split(strings.TrimSuffix(strings.TrimPrefix(txt, `"`), `"`), `" "`)
	}
	return s, true
}

// waitAvahi waits for a line of p, from index from, that parses and
// matches. A failure shows what p printed, and the logs of the peers
// given.
func waitAvahi(t *testing.T, ctx context.Context, p *nslan.Proc, from int, match func(avahiService) bool, logs ...*pircli.Peer) avahiService {
	t.Helper()
	var found avahiService
	_, _, err := p.WaitLine(ctx, from, func(l nslan.Line) bool {
		s, ok := parseAvahi(l.Text)
		if ok && match(s) {
			found = s
			return true
		}
		return false
	})
	msg := "avahi-browse printed:\n" + joinLines(p.Lines())
	for _, peer := range logs {
		msg += "\n" + peer.Name() + "'s log:\n" + peer.Stderr()
	}
	require.NoError(t, err, msg)
	return found
}

func joinLines(lines []nslan.Line) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

// mustPort is uri's port.
func mustPort(t *testing.T, uri string) string {
	t.Helper()
	u, err := url.Parse(uri)
	require.NoError(t, err)
	require.NotEmpty(t, u.Port(), "URI %s", uri)
	return u.Port()
}

// pir and avahi see each other. avahi-browse, browsing the group's
// subtype, finds and resolves a pir member with the records pir's
// transport/mdns documents (instance = ID, host "NAME-pir-HASH.local", the
// SRV port of the comms URI, the TXT keys, the health URI with HOST.local for
// the address it listens on) and drops it at its goodbye; "pir
// watch -mdns _http._tcp" lists a service avahi-publish registers, with its
// address, port and TXT, and drops it when avahi withdraws it.
func TestMDNSAvahiInterop(t *testing.T) {
	requireMDNSFlags(t)
	for _, tool := range avahiTools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("e2e: %s is not installed (Debian: apt-get install avahi-daemon avahi-utils dbus util-linux)", tool)
		}
	}
	l := newLab(t, nslan.Config{Hosts: 3})
	hosts := l.Hosts()
	a := startAvahi(t, hosts[0])

	// avahi sees pir.
	browse := a.start(t, "avahi-browse", "-p", "-r", "-k", "_pir._sub._pir._udp")
	comms := "tcp://" + hosts[1].IPv4.String() + ":8080"
	members := []*pircli.Peer{join(t, hosts[1], "-mdns", "-meta", "role=a", "-comms", comms, "-log", "debug"), join(t, hosts[2], "-mdns")}
	seen := requireMesh(t, members, members, nil)
	self := seen[members[1]][members[0].ID] // how the other pir member sees it
	ctx, cancel := context.WithTimeout(context.Background(), meetTimeout)
	defer cancel()
	s := waitAvahi(t, ctx, browse, 0, func(s avahiService) bool {
		return s.Event == "=" && s.Family == "IPv4" && s.Name == members[0].ID
	})
	assert.Equal(t, "eth0", s.Iface)
	assert.Equal(t, "_pir._udp", s.Type)
	assert.Regexp(t, `-pir-[0-9a-f]{8}\.local$`, s.Host)
	assert.Equal(t, hosts[1].IPv4.String(), s.Addr)
	assert.Equal(t, 8080, s.Port, "the comms URI's port")
	assert.ElementsMatch(t, []string{
		"txtvers=1", "id=" + members[0].ID, "g=pir", "health=tcp://" + s.Host + ":" + mustPort(t, self.HealthURI), "comms=" + comms, "m.role=a",
	}, s.TXT)
	// Found over IPv6 too; resolved to what the member publishes (pir
	// join listens on 0.0.0.0 here, so its A record only).
	s6 := waitAvahi(t, ctx, browse, 0, func(s avahiService) bool {
		return s.Event == "=" && s.Family == "IPv6" && s.Name == members[0].ID
	})
	a6, err := netip.ParseAddr(s6.Addr)
	require.NoError(t, err, "avahi resolved %+v", s6)
	assert.True(t, a6 == hosts[1].IPv4 || a6 == hosts[1].IPv6 || a6.IsLinkLocalUnicast(),
		"avahi resolved %s to %s, not an address of %s", s6.Name, a6, hosts[1].Name)

	// The goodbye reaches avahi: the member is gone from its browse.
	from := browse.Len()
	require.NoError(t, members[0].Interrupt())
	rctx, rcancel := context.WithTimeout(context.Background(), removeTimeout)
	defer rcancel()
	waitAvahi(t, rctx, browse, from, func(s avahiService) bool { return s.Event == "-" && s.Name == members[0].ID }, members[0])

	// pir sees avahi.
	w := watch(t, hosts[2], "-mdns", "_http._tcp", "-wait-probe")
	pub := a.start(t, "avahi-publish", "-s", "Intranet", "_http._tcp", "8080", "path=/wiki")
	ctx2, cancel2 := context.WithTimeout(context.Background(), meetTimeout)
	defer cancel2()
	e, err := w.WaitEvent(ctx2, 0, func(e pircli.Event) bool { return e.Event == pircli.Joined })
	require.NoError(t, err, "%s's log:\n%s\navahi-publish:\n%s", w.Name(), w.Stderr(), joinLines(pub.Lines()))
	assert.Regexp(t, `^Intranet-[0-9a-f]{8}$`, e.ID)
	assert.Contains(t, []string{"mdns://" + hosts[0].IPv4.String() + ":8080", "mdns://[" + hosts[0].IPv6.String() + "]:8080"},
		e.HealthURI)
	assert.Equal(t, map[string]string{"path": "/wiki"}, e.Meta)

	// avahi-publish withdraws its service when it exits.
	from2 := w.Len()
	require.NoError(t, pub.Interrupt())
	rctx2, rcancel2 := context.WithTimeout(context.Background(), removeTimeout)
	defer rcancel2()
	_, err = w.WaitEvent(rctx2, from2, pircli.Is(pircli.Left, e.ID, pircli.Goodbye))
	require.NoError(t, err, "%s's log:\n%s", w.Name(), w.Stderr())
}
