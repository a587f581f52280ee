// Package netlab runs a package's tests inside a private network namespace,
// so that tests with real multicast never touch the host's interfaces.
//
// A package opts in with
//
//	func TestMain(m *testing.M) { netlab.Main(m) }
//
// Main re-executes the test binary under unshare(1) in a fresh network
// namespace (`unshare -n` as root, `unshare -rn` otherwise, which needs
// unprivileged user namespaces), passing os.Args, stdin, stdout and stderr
// through and exiting with the inner run's exit code. The inner run
// recognises itself by the PIR_NETLAB environment variable, which carries
// the outer process's namespace identity; before it reports Available it
// checks that its namespace really differs from the outer one and that lo is
// its only interface. It then sets up loopback multicast:
//
//	ip link set lo up multicast on
//	ip route add 224.0.0.0/4 dev lo
//	ip addr add 198.18.255.1/32 dev lo      (LoopbackV4: a real IPv4 source)
//	ip -6 route add local ff00::/8 dev lo table local
//
// The IPv6 route must be of type local: a plain route to ff00::/8 on lo is
// a reject route, and datagrams sent to it vanish without an error.
//
// When no namespace can be made (not Linux, unshare or ip missing, user
// namespaces disabled), Main runs the tests in-process with Available false,
// and every test that calls Require skips, saying why. Main never falls back
// to the host's interfaces.
//
// A program other than a test (a demo, say) does what Main does by hand:
// outside, Reexec runs it again in a namespace; inside (Inside reports
// whether this is the re-executed run), Enter checks and sets up the
// namespace.
//
// Inside the namespace there is no network at all: the test binary is
// already built, so that is fine, but a test cannot download anything.
// A test may create interfaces of its own (veth pairs work, also rootless)
// with IP or MustIP; they vanish with the namespace when the run ends.
package netlab
