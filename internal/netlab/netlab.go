package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// envInner marks the inner run. Its value is the outer process's network
// namespace identity, which the inner run compares with its own.
const envInner = "PIR_NETLAB"

// Loopback is the name of the namespace's loopback interface, the only
// interface there unless a test makes more.
const Loopback = "lo"

var (
	// LoopbackV4 is the address Main adds to lo so that IPv4 multicast
	// sent on lo has a real source (otherwise it leaves from 0.0.0.0). It
	// is in 198.18.0.0/15, the benchmarking range, which is never routed.
	LoopbackV4 = netip.MustParseAddr("198.18.255.1")
	// LoopbackV6 is lo's IPv6 address, the source of IPv6 multicast on lo.
	LoopbackV6 = netip.IPv6Loopback()
)

// ErrUnavailable is returned by IP outside the private namespace: netlab
// never changes the host's network configuration.
var ErrUnavailable = errors.New("netlab: not inside a private network namespace")

// lab is written by Main or Enter before any test (or any use by a program)
// runs; afterwards it is only read.
var lab = struct {
	available  bool
	reason     string // why available is false
	ipv6       bool
	ipv6Reason string // why ipv6 is false
	ip         string // path of ip(8)
}{
	reason:     "netlab.Main did not run: the package's TestMain must call netlab.Main(m)",
	ipv6Reason: "netlab.Main did not run: the package's TestMain must call netlab.Main(m)",
}

// Main runs m inside a private network namespace with loopback multicast
// set up, by re-executing the test binary under unshare(1), unless this
// process already is that inner run. If no namespace can be made, it runs m
// in this process with Available false. Main does not return: it exits
// with the tests' exit code. Call it from TestMain:
//
//	func TestMain(m *testing.M) { netlab.Main(m) }
func Main(m *testing.M) {
	if Inside() {
		Enter()
		os.Exit(m.Run())
	}
	code, ran, reason := Reexec()
	if ran {
		exitNow(code)
	}
	lab.reason = reason
	lab.ipv6Reason = reason
	os.Exit(m.Run())
}

// Inside reports whether this process is the inner run that Reexec (or
// Main) started: whether PIR_NETLAB is set. Enter checks that it really is
// in a private namespace.
func Inside() bool {
	_, ok := os.LookupEnv(envInner)
	return ok
}

// Reexec runs this program again, with the same arguments, standard input,
// output and error, in a new network namespace, and reports its exit code.
// ran is false, with reason saying why, when no namespace could be made;
// nothing ran then. Main uses it for tests; a program such as a demo may
// use it too, and call Enter in the inner run.
func Reexec() (code int, ran bool, reason string) {
	return reexec()
}

// Enter, in the inner run, checks that this process is in a fresh network
// namespace, not its parent's, and sets up loopback multicast there. It
// reports whether that worked and, if not, why; Available then reports the
// same. It never touches a namespace it has not checked. Only the first
// call does anything; later ones report its outcome.
func Enter() (ok bool, reason string) {
	enterOnce.Do(func() {
		outer, inside := os.LookupEnv(envInner)
		if !inside {
			lab.reason = envInner + " is not set: this is not a run that Reexec started"
			lab.ipv6Reason = lab.reason
			return
		}
		enter(outer)
	})
	return lab.available, lab.reason
}

var enterOnce sync.Once

// Available reports whether this process runs inside the private namespace
// Main made, with IPv4 multicast working on lo.
func Available() bool { return lab.available }

// AvailableIPv6 reports whether IPv6 multicast also works on lo (it does
// not when the kernel runs with IPv6 disabled).
func AvailableIPv6() bool { return lab.available && lab.ipv6 }

// Require skips the test unless Available, saying why.
func Require(t testing.TB) {
	t.Helper()
	if !lab.available {
		t.Skip("netlab: no private network namespace: " + lab.reason)
	}
}

// RequireIPv6 skips the test unless AvailableIPv6, saying why.
func RequireIPv6(t testing.TB) {
	t.Helper()
	Require(t)
	if !lab.ipv6 {
		t.Skip("netlab: no IPv6 multicast in the namespace: " + lab.ipv6Reason)
	}
}

// IP runs ip(8) with args inside the private namespace and returns its
// combined output. Outside the namespace it runs nothing and returns an
// error wrapping ErrUnavailable.
func IP(args ...string) (string, error) {
	if !lab.available {
		return "", fmt.Errorf("ip %s: %w", strings.Join(args, " "), ErrUnavailable)
	}
	return runIP(lab.ip, args...)
}

// MustIP runs ip(8) with args inside the private namespace, skipping the
// test outside it and failing it when ip fails.
func MustIP(t testing.TB, args ...string) string {
	t.Helper()
	Require(t)
	out, err := IP(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// MustAddr6 adds the IPv6 address prefix (an address and its length) to
// interface dev without duplicate address detection, and waits until the
// kernel delivers to it. Even with nodad the address's local route is
// inserted by the kernel's address worker after ip(8) returns, and until
// then a datagram sent to the address is lost; on a loaded machine that
// can take longer than a test takes to send (TestReadLinkLocalZone lost
// its first datagram so in a loaded run). An address dev has already is
// waited for the same way. The test fails when the route is still missing,
// or the address tentative, after 10 s.
func MustAddr6(t testing.TB, dev string, prefix netip.Prefix) {
	t.Helper()
	RequireIPv6(t)
	if out, err := IP("-6", "addr", "add", prefix.String(), "dev", dev, "nodad"); err != nil && !strings.Contains(out, "File exists") {
		t.Fatal(err)
	}
	a := prefix.Addr().String()
	deadline := time.Now().Add(10 * time.Second)
	for {
		addr := MustIP(t, "-6", "-o", "addr", "show", "dev", dev, "to", a+"/128")
		route := MustIP(t, "-6", "route", "show", "table", "local", a, "dev", dev)
		if strings.Contains(addr, " "+prefix.String()+" ") && !strings.Contains(addr, "tentative") && strings.Contains(route, a) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s: not delivered to after 10 s: %q, local route %q", prefix, dev, addr, route)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func runIP(path string, args ...string) (string, error) {
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

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
	return "", fmt.Errorf("%s not found in PATH, /usr/sbin or /sbin (Debian: apt-get install %s)", name, debianPackage(name))
}

func debianPackage(tool string) string {
	switch tool {
	case "ip":
		return "iproute2"
	case "unshare":
		return "util-linux"
	}
	return tool
}

func hasAddr(ifi *net.Interface, want netip.Addr) bool {
	addrs, err := ifi.Addrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if got, ok := netip.AddrFromSlice(n.IP); ok && got.Unmap() == want {
				return true
			}
		}
	}
	return false
}
