package nslan

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxHosts is the largest Config.Hosts.
const MaxHosts = 1000

// netnsDir is where ip(8) keeps the named network namespaces.
const netnsDir = "/run/netns"

// cmdTimeout bounds each ip, nsenter or nft command the lab runs itself.
const cmdTimeout = 20 * time.Second

var (
	// ErrUnavailable is returned by New when no lab can be made here; the
	// error says why.
	ErrUnavailable = errors.New("lab: unavailable")
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("lab: closed")
)

var (
	// netV4 and netV6 are the LAN's prefixes: 198.18.0.0/15 is the
	// benchmarking range (RFC 2544), never routed; fd42::/64 is a unique
	// local prefix.
	netV4 = netip.MustParsePrefix("198.18.0.0/15")
	netV6 = netip.MustParsePrefix("fd42::/64")
)

// Config configures a Lab.
type Config struct {
	// Hosts is the number of hosts, from 1 to MaxHosts. Zero means 1.
	Hosts int

	// IPv4 and IPv6 choose the address families of the LAN. Host I gets
	// 198.18.0.(I+1)/15 and a route to 224.0.0.0/4 on eth0 when IPv4 is
	// set; fd42::(I+1)/64 and a link-local address when IPv6 is set. A
	// host without IPv6 has IPv6 disabled altogether. Both false means
	// both.
	IPv4, IPv6 bool

	// Prefix starts the name of every namespace of the lab: Prefix-sw,
	// Prefix-h0, ... It must be a valid file name of at most 200 bytes
	// made of letters, digits, '-', '_' and '.'. Empty means
	// "pirlab-PID-N", unique to this process and lab. New deletes
	// leftovers of an earlier lab with the same Prefix.
	Prefix string

	// Logf, if not nil, receives a line for each command the lab runs
	// (t.Logf fits).
	Logf func(format string, args ...any)

	// failAt makes New fail after the step of that name, for tests of
	// the clean-up of a half-made lab.
	failAt string
}

// Lab is a LAN of network namespaces. Its methods are safe for concurrent
// use.
type Lab struct {
	cfg    Config
	tools  tools
	sw     string // the switch's namespace
	hosts  []*Host
	logf   func(format string, args ...any)
	closed atomic.Bool

	mu    sync.Mutex
	procs map[*Proc]struct{} // started and not yet reaped by Close
	loss  map[int]loss       // host index -> loss, for SetLoss and SetSendLoss
	sides [][]string         // switch ports on each side of a Partition

	closeOnce sync.Once
	closeErr  error
}

// Host is one host of a Lab: a network namespace with the interfaces lo and
// eth0.
type Host struct {
	// Name is the host's short name: "h0", "h1", ...
	Name string
	// NS is its network namespace's name, as ip netns knows it.
	NS string
	// Index is its position in Lab.Hosts.
	Index int
	// IPv4 and IPv6 are eth0's addresses; invalid when the lab does not
	// use that family. IPv6 is the unique local address (fd42::/64), not
	// the link-local one.
	IPv4, IPv6 netip.Addr

	lab  *Lab
	port string // its switch port in the switch namespace
}

// defaultPrefixes counts the labs of this process with a default Prefix.
var defaultPrefixes atomic.Int64

const defaultPrefix = "pirlab"

// staleDefault matches the namespaces of labs with a default Prefix,
// capturing the PID of the process that made them.
var staleDefault = regexp.MustCompile(`^` + defaultPrefix + `-([0-9]+)-(probe|[0-9]+-(sw|h[0-9]+))$`)

var validPrefix = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,200}$`)

// New makes a lab as cfg says. When it fails half-way it deletes whatever
// it made before returning the error. Close the lab when done.
func New(cfg Config) (*Lab, error) {
	if ok, reason := Available(); !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, reason)
	}
	if cfg.Hosts == 0 {
		cfg.Hosts = 1
	}
	if !cfg.IPv4 && !cfg.IPv6 {
		cfg.IPv4, cfg.IPv6 = true, true
	}
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("%s-%d-%d", defaultPrefix, os.Getpid(), defaultPrefixes.Add(1))
	}
	var errs []error
	if cfg.Hosts < 1 || cfg.Hosts > MaxHosts {
		errs = append(errs, fmt.Errorf("hosts %d: want 1 to %d", cfg.Hosts, MaxHosts))
	}
	if !validPrefix.MatchString(cfg.Prefix) || cfg.Prefix == "." || cfg.Prefix == ".." {
		errs = append(errs, fmt.Errorf("prefix %q: want 1 to 200 letters, digits, '-', '_' or '.'", cfg.Prefix))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("lab: invalid config: %w", err)
	}

	l := &Lab{
		cfg:   cfg,
		tools: findTools(),
		sw:    cfg.Prefix + "-sw",
		logf:  cfg.Logf,
		procs: make(map[*Proc]struct{}),
		loss:  make(map[int]loss),
	}
	if l.logf == nil {
		l.logf = func(string, ...any) {}
	}
	for i := range cfg.Hosts {
		h := &Host{Name: fmt.Sprintf("h%d", i), Index: i, lab: l, port: fmt.Sprintf("sw-h%d", i)}
		h.NS = cfg.Prefix + "-" + h.Name
		if cfg.IPv4 {
			h.IPv4 = addrAt(netV4, i+1)
		}
		if cfg.IPv6 {
			h.IPv6 = addrAt(netV6, i+1)
		}
		l.hosts = append(l.hosts, h)
	}
	if err := l.build(); err != nil {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up: %w", cerr))
		}
		return nil, err
	}
	return l, nil
}

// addrAt returns the address n after the start of p.
func addrAt(p netip.Prefix, n int) netip.Addr {
	b := p.Addr().AsSlice()
	for i := len(b) - 1; i >= 0 && n > 0; i-- {
		sum := int(b[i]) + n
		b[i], n = byte(sum), sum>>8
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// build makes the namespaces, the switch and the hosts' links.
func (l *Lab) build() error {
	if err := l.deleteStale(); err != nil {
		return err
	}
	names := l.namespaces()
	var add strings.Builder
	for _, ns := range names {
		fmt.Fprintf(&add, "netns add %s\n", ns)
	}
	if err := l.run(add.String(), l.tools.ip, "-batch", "-"); err != nil {
		return fmt.Errorf("lab: creating the namespaces: %w", err)
	}
	if err := l.step("namespaces"); err != nil {
		return err
	}

	// Sysctls first: links made afterwards inherit the defaults. The
	// switch has no IPv6 at all, so that it sends nothing of its own.
	if err := l.sysctl(l.sw, map[string]string{
		"net/ipv6/conf/all/disable_ipv6":     "1",
		"net/ipv6/conf/default/disable_ipv6": "1",
	}); err != nil {
		return err
	}
	for _, h := range l.hosts {
		if err := l.sysctl(h.NS, l.hostSysctls()); err != nil {
			return err
		}
	}
	if err := l.step("sysctl"); err != nil {
		return err
	}

	var sw strings.Builder
	sw.WriteString("link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0\nlink set br0 up\n")
	for _, h := range l.hosts {
		fmt.Fprintf(&sw, "link add %s type veth peer name eth0 netns %s\n", h.port, h.NS)
		fmt.Fprintf(&sw, "link set %s master br0 up\n", h.port)
	}
	if err := l.run(sw.String(), l.tools.ip, "-n", l.sw, "-batch", "-"); err != nil {
		return fmt.Errorf("lab: cabling the switch: %w", err)
	}
	if err := l.step("switch"); err != nil {
		return err
	}

	for _, h := range l.hosts {
		var b strings.Builder
		b.WriteString("link set lo up\n")
		if h.IPv4.IsValid() {
			fmt.Fprintf(&b, "addr add %s dev eth0\n", netip.PrefixFrom(h.IPv4, netV4.Bits()))
		}
		if h.IPv6.IsValid() {
			fmt.Fprintf(&b, "addr add %s dev eth0 nodad\n", netip.PrefixFrom(h.IPv6, netV6.Bits()))
		}
		b.WriteString("link set eth0 up\n")
		if h.IPv4.IsValid() {
			b.WriteString("route add 224.0.0.0/4 dev eth0\n")
		}
		if err := l.run(b.String(), l.tools.ip, "-n", h.NS, "-batch", "-"); err != nil {
			return fmt.Errorf("lab: setting up host %s: %w", h.Name, err)
		}
	}
	return l.step("hosts")
}

func (l *Lab) step(name string) error {
	if l.cfg.failAt == name {
		return fmt.Errorf("lab: failing after step %q as the test asked", name)
	}
	return nil
}

func (l *Lab) hostSysctls() map[string]string {
	s := make(map[string]string)
	for _, c := range []string{"all", "default"} {
		s["net/ipv4/conf/"+c+"/rp_filter"] = "0"
		if !l.cfg.IPv6 {
			s["net/ipv6/conf/"+c+"/disable_ipv6"] = "1"
			continue
		}
		s["net/ipv6/conf/"+c+"/accept_dad"] = "0"
		s["net/ipv6/conf/"+c+"/keep_addr_on_down"] = "1"
		s["net/ipv6/conf/"+c+"/router_solicitations"] = "0"
	}
	return s
}

// sysctl writes the settings (paths under /proc/sys) in namespace ns, with
// one shell run by nsenter: /proc/sys/net shows the writer's namespace.
func (l *Lab) sysctl(ns string, settings map[string]string) error {
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&script, "echo %s > /proc/sys/%s\n", settings[k], k)
	}
	if err := l.run("", l.tools.nsenter, "--net="+filepath.Join(netnsDir, ns), "--", l.tools.sh, "-c", script.String()); err != nil {
		return fmt.Errorf("lab: sysctls in %s: %w", ns, err)
	}
	return nil
}

// namespaces lists the lab's namespaces, switch first.
func (l *Lab) namespaces() []string {
	names := []string{l.sw}
	for _, h := range l.hosts {
		names = append(names, h.NS)
	}
	return names
}

// ours reports whether a namespace name is one a lab with this Prefix
// makes.
func (l *Lab) ours(name string) bool {
	rest, ok := strings.CutPrefix(name, l.cfg.Prefix+"-")
	if !ok {
		return false
	}
	if rest == "sw" {
		return true
	}
	n, ok := strings.CutPrefix(rest, "h")
	if !ok || n == "" {
		return false
	}
	_, err := strconv.ParseUint(n, 10, 32)
	return err == nil
}

// deleteStale deletes the namespaces an earlier lab with the same Prefix
// left, and those of default-prefixed labs whose process is gone.
func (l *Lab) deleteStale() error {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lab: listing %s: %w", netnsDir, err)
	}
	var stale []string
	for _, e := range entries {
		name := e.Name()
		if l.ours(name) {
			stale = append(stale, name)
			continue
		}
		if m := staleDefault.FindStringSubmatch(name); m != nil && !processAlive(m[1]) {
			stale = append(stale, name)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	l.logf("lab: deleting stale namespaces %v", stale)
	return l.deleteNamespaces(stale)
}

func processAlive(pid string) bool {
	if pid == strconv.Itoa(os.Getpid()) {
		return true
	}
	_, err := os.Stat(filepath.Join("/proc", pid))
	return err == nil
}

// deleteNamespaces deletes the named namespaces, going on past errors
// (some may not exist).
func (l *Lab) deleteNamespaces(names []string) error {
	var b strings.Builder
	for _, ns := range names {
		fmt.Fprintf(&b, "netns delete %s\n", ns)
	}
	err := l.run(b.String(), l.tools.ip, "-force", "-batch", "-")
	// ip -force reports an error if any line failed, such as a namespace
	// that was never made: what counts is that none is left.
	var left []string
	for _, ns := range names {
		if _, serr := os.Lstat(filepath.Join(netnsDir, ns)); serr == nil {
			left = append(left, ns)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("lab: deleting namespaces %v: %w", left, err)
	}
	return nil
}

// run runs a command, feeding it stdin, and wraps its output into the error
// when it fails.
func (l *Lab) run(stdin string, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	l.logf("lab: %s %s%s", name, strings.ReplaceAll(strings.Join(args, " "), "\n", "; "), logStdin(stdin))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func logStdin(s string) string {
	if s == "" {
		return ""
	}
	return " <<< " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ")
}

// Hosts returns the lab's hosts, in order.
func (l *Lab) Hosts() []*Host { return slices.Clone(l.hosts) }

// Host returns host i.
func (l *Lab) Host(i int) *Host { return l.hosts[i] }

// Prefix returns the prefix of the lab's namespace names.
func (l *Lab) Prefix() string { return l.cfg.Prefix }

// SwitchNS returns the name of the switch's namespace, where the bridge br0
// and the ports sw-h0... are (for tcpdump, say).
func (l *Lab) SwitchNS() string { return l.sw }

// LinkDown pulls h's cable at its switch port: what h sends vanishes
// without an error, nothing reaches it, and its eth0 loses its carrier.
func (l *Lab) LinkDown(h *Host) error { return l.setPort(h, "down") }

// LinkUp plugs h's cable back in.
func (l *Lab) LinkUp(h *Host) error { return l.setPort(h, "up") }

func (l *Lab) setPort(h *Host, state string) error {
	if err := l.check(h); err != nil {
		return err
	}
	if err := l.run("", l.tools.ip, "-n", l.sw, "link", "set", h.port, state); err != nil {
		return fmt.Errorf("lab: link %s %s: %w", h.Name, state, err)
	}
	return nil
}

// loss is the random loss on one host's switch port.
type loss struct {
	percent  int
	sendOnly bool // only the frames the host sends
}

// SetLoss makes the switch drop, at random, percent per cent of the frames
// h sends and, separately, of those it receives (so a round trip through
// h's port is lost more often). 0 removes the loss; 100 drops every frame
// but leaves the link up. It needs nft(8): see AvailableLoss.
func (l *Lab) SetLoss(h *Host, percent int) error { return l.setLoss(h, loss{percent: percent}) }

// SetSendLoss is SetLoss for the frames h sends only. Set on every host, it
// makes every frame between two hosts cross exactly one lossy port: percent
// per cent loss end to end, in each direction.
func (l *Lab) SetSendLoss(h *Host, percent int) error {
	return l.setLoss(h, loss{percent: percent, sendOnly: true})
}

func (l *Lab) setLoss(h *Host, ls loss) error {
	percent := ls.percent
	if err := l.check(h); err != nil {
		return err
	}
	if percent < 0 || percent > 100 {
		return fmt.Errorf("lab: loss %d%%: want 0 to 100", percent)
	}
	if l.tools.nft == "" {
		return fmt.Errorf("lab: loss needs nft: %w", errors.New(l.tools.nftMissing))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if percent == 0 {
		delete(l.loss, h.Index)
	} else {
		l.loss[h.Index] = ls
	}
	if err := l.applyFilters(); err != nil {
		return fmt.Errorf("lab: setting loss on %s: %w", h.Name, err)
	}
	return nil
}

// Partition cuts the LAN into the given sides: frames between hosts on
// different sides are dropped at the switch, while each side still works
// as a LAN. Hosts on no side keep reaching everyone. A new Partition
// replaces the last; Heal ends it. It needs nft(8).
func (l *Lab) Partition(sides ...[]*Host) error {
	if l.closed.Load() {
		return ErrClosed
	}
	if l.tools.nft == "" {
		return fmt.Errorf("lab: partitions need nft: %w", errors.New(l.tools.nftMissing))
	}
	var ports [][]string
	for _, side := range sides {
		var ps []string
		for _, h := range side {
			if err := l.check(h); err != nil {
				return err
			}
			ps = append(ps, l.hosts[h.Index].port)
		}
		ports = append(ports, ps)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sides = ports
	if err := l.applyFilters(); err != nil {
		return fmt.Errorf("lab: partition: %w", err)
	}
	return nil
}

// Heal ends a Partition.
func (l *Lab) Heal() error { return l.Partition() }

// applyFilters loads the switch's filter table: loss and partitions, in one
// transaction. l.mu must be held.
func (l *Lab) applyFilters() error {
	// Replace the whole table in one transaction; "table" before
	// "delete table" makes sure there is one to delete.
	var b strings.Builder
	b.WriteString("table bridge lab\ndelete table bridge lab\n")
	if len(l.loss) > 0 || len(l.sides) > 0 {
		b.WriteString("table bridge lab {\n\tchain f {\n\t\ttype filter hook forward priority 0; policy accept;\n")
		set := func(ps []string) string { return "{ \"" + strings.Join(ps, "\", \"") + "\" }" }
		for i, a := range l.sides {
			for j, c := range l.sides {
				if i != j && len(a) > 0 && len(c) > 0 {
					fmt.Fprintf(&b, "\t\tiifname %s oifname %s drop\n", set(a), set(c))
				}
			}
		}
		for _, i := range slices.Sorted(maps.Keys(l.loss)) {
			drop := "drop"
			if p := l.loss[i].percent; p < 100 {
				drop = fmt.Sprintf("numgen random mod 100 < %d drop", p)
			}
			port := l.hosts[i].port
			fmt.Fprintf(&b, "\t\tiifname %q %s\n", port, drop)
			if !l.loss[i].sendOnly {
				fmt.Fprintf(&b, "\t\toifname %q %s\n", port, drop)
			}
		}
		b.WriteString("\t}\n}\n")
	}
	return l.run(b.String(), l.tools.nsenter, "--net="+filepath.Join(netnsDir, l.sw), "--", l.tools.nft, "-f", "-")
}

// ClearLoss removes the loss SetLoss put on h.
func (l *Lab) ClearLoss(h *Host) error { return l.SetLoss(h, 0) }

func (l *Lab) check(h *Host) error {
	if l.closed.Load() {
		return ErrClosed
	}
	if h == nil || h.lab != l {
		return errors.New("lab: host of another lab")
	}
	return nil
}

// Close kills every process started with Start or StartCommand and still
// running, waits for them, and deletes every namespace of the lab. It is
// idempotent: later calls return the first one's result.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		l.mu.Lock()
		procs := slices.Collect(maps.Keys(l.procs))
		l.procs = nil
		l.mu.Unlock()
		var errs []error
		for _, p := range procs {
			_ = p.Kill()
		}
		for _, p := range procs {
			<-p.done
		}
		// Every namespace the lab meant to make, and any other of its
		// Prefix, so that a half-made lab leaves nothing either.
		names := l.namespaces()
		if entries, err := os.ReadDir(netnsDir); err == nil {
			for _, e := range entries {
				if l.ours(e.Name()) && !slices.Contains(names, e.Name()) {
					names = append(names, e.Name())
				}
			}
		}
		if err := l.deleteNamespaces(names); err != nil {
			errs = append(errs, err)
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// tools are the paths of the programs a lab runs.
type tools struct {
	ip, nsenter, sh string
	nft             string // empty if missing
	nftMissing      string // why nft is empty
	missing         string // why ip, nsenter or sh is empty
}

var findTools = sync.OnceValue(func() tools {
	var t tools
	var missing []string
	for _, want := range []struct {
		name string
		path *string
	}{{"ip", &t.ip}, {"nsenter", &t.nsenter}, {"sh", &t.sh}} {
		p, err := lookTool(want.name)
		if err != nil {
			missing = append(missing, err.Error())
		}
		*want.path = p
	}
	t.missing = strings.Join(missing, "; ")
	if p, err := lookTool("nft"); err != nil {
		t.nftMissing = err.Error()
	} else {
		t.nft = p
	}
	return t
})

// lookTool finds a system tool in PATH or in the sbin directories an
// ordinary user's PATH often lacks.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/sbin or /sbin (Debian: apt-get install %s)", name, debianPackage[name])
}

var debianPackage = map[string]string{"ip": "iproute2", "nsenter": "util-linux", "sh": "dash", "nft": "nftables"}

// Available reports whether a lab can be made here and, if not, why: it
// needs Linux, root and the tools ip, nsenter and sh, and it tries making
// and deleting a namespace once per process to be sure.
func Available() (ok bool, reason string) {
	r := available()
	return r == "", r
}

// AvailableLoss reports whether SetLoss works here (Available, and nft
// present) and, if not, why.
func AvailableLoss() (ok bool, reason string) {
	if ok, reason := Available(); !ok {
		return false, reason
	}
	if t := findTools(); t.nft == "" {
		return false, t.nftMissing
	}
	return true, ""
}

var available = sync.OnceValue(func() string {
	if runtime.GOOS != "linux" {
		return "network namespaces need Linux, not " + runtime.GOOS
	}
	if os.Geteuid() != 0 {
		return "ip netns needs root (run the tests as root, e.g. sudo go test)"
	}
	t := findTools()
	if t.missing != "" {
		return t.missing
	}
	probe := fmt.Sprintf("%s-%d-probe", defaultPrefix, os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, t.ip, "netns", "add", probe).CombinedOutput(); err != nil {
		return fmt.Sprintf("ip netns add failed (a container without CAP_SYS_ADMIN?): %v: %s", err, strings.TrimSpace(string(out)))
	}
	if out, err := exec.CommandContext(ctx, t.ip, "netns", "delete", probe).CombinedOutput(); err != nil {
		return fmt.Sprintf("ip netns delete %s failed: %v: %s", probe, err, strings.TrimSpace(string(out)))
	}
	return ""
})
