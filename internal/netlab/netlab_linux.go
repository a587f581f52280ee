package netlab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
)

// nsPath names this process's network namespace; reading the link gives
// an identity such as "net:[4026531840]".
const nsPath = "/proc/self/ns/net"

// reexec runs this program again in a new network namespace and reports
// its exit code. ran is false, with reason set, when no namespace could be
// made; nothing has run then.
func reexec() (code int, ran bool, reason string) {
	unshare, err := lookTool("unshare")
	if err != nil {
		return 0, false, err.Error()
	}
	ip, err := lookTool("ip")
	if err != nil {
		return 0, false, err.Error()
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, false, fmt.Sprintf("finding this program's binary: %v", err)
	}
	ns, err := os.Readlink(nsPath)
	if err != nil {
		return 0, false, fmt.Sprintf("reading the network namespace: %v", err)
	}
	// Probe first, so that a failing unshare is not mistaken for failing
	// tests: both would exit 1. Root tries a plain network namespace first
	// and then, as in a container without CAP_SYS_ADMIN, a user namespace
	// too, which is what everyone else needs.
	tries := []string{"-rn"}
	if os.Geteuid() == 0 {
		tries = []string{"-n", "-rn"}
	}
	var flags string
	var failures []string
	for _, f := range tries {
		out, err := exec.Command(unshare, f, "--", ip, "-o", "link", "show").CombinedOutput()
		if err == nil {
			flags = f
			break
		}
		msg := fmt.Sprintf("%s %s: %v", unshare, f, err)
		if o := strings.TrimSpace(string(out)); o != "" {
			msg += ": " + o
		}
		failures = append(failures, msg)
	}
	if flags == "" {
		return 0, false, fmt.Sprintf("cannot make a network namespace (no CAP_SYS_ADMIN, or unprivileged user namespaces disabled?): %s",
			strings.Join(failures, "; "))
	}

	cmd := exec.Command(unshare, append([]string{flags, "--", exe}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envInner+"="+ns)
	// The inner run dies with this process. Pdeathsig follows the thread that
	// started the child, so keep this goroutine on it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	// Pass on the signals a user or the go command sends: SIGQUIT from a
	// go test timeout then dumps the inner run's goroutines.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		signal.Stop(sigs)
		return 0, false, fmt.Sprintf("starting %s: %v", unshare, err)
	}
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	signal.Stop(sigs)
	close(sigs)
	<-forwarded

	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, true, ""
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), true, ""
		}
		return exit.ExitCode(), true, ""
	default:
		fmt.Fprintf(os.Stderr, "netlab: waiting for the run in the namespace: %v\n", err)
		return 1, true, ""
	}
}

// exitNow ends the outer process, which ran no test. It skips what os.Exit
// does first, which here is only the race detector's one-second pause at
// exit: the inner run already paid it.
func exitNow(code int) { syscall.Exit(code) }

// enter runs in the re-executed test binary: it checks that this is a fresh
// namespace, not the outer one, and sets up loopback multicast. It sets lab.
func enter(outerNS string) {
	if err := checkFresh(outerNS); err != nil {
		lab.reason = err.Error()
		return
	}
	ip, err := lookTool("ip")
	if err != nil {
		lab.reason = err.Error()
		return
	}
	for _, args := range [][]string{
		{"link", "set", Loopback, "up", "multicast", "on"},
		{"route", "add", "224.0.0.0/4", "dev", Loopback},
		{"addr", "add", LoopbackV4.String() + "/32", "dev", Loopback},
	} {
		if _, err := runIP(ip, args...); err != nil {
			lab.reason = fmt.Sprintf("setting up the namespace: %v", err)
			return
		}
	}
	lo, err := net.InterfaceByName(Loopback)
	if err != nil {
		lab.reason = fmt.Sprintf("setting up the namespace: %v", err)
		return
	}
	if lo.Flags&(net.FlagUp|net.FlagMulticast) != net.FlagUp|net.FlagMulticast {
		lab.reason = fmt.Sprintf("setting up the namespace: %s is %v, want up and multicast", Loopback, lo.Flags)
		return
	}
	lab.ip = ip
	lab.available = true
	lab.reason = ""

	// IPv6 is optional: the kernel may run with it disabled.
	if _, err := runIP(ip, "-6", "route", "add", "local", "ff00::/8", "dev", Loopback, "table", "local"); err != nil {
		lab.ipv6Reason = err.Error()
		return
	}
	if !hasAddr(lo, LoopbackV6) {
		lab.ipv6Reason = fmt.Sprintf("%s has no address %s", Loopback, LoopbackV6)
		return
	}
	lab.ipv6 = true
	lab.ipv6Reason = ""
}

// checkFresh reports an error unless this process is in a network
// namespace other than outerNS whose only interface is loopback.
func checkFresh(outerNS string) error {
	ns, err := os.Readlink(nsPath)
	if err != nil {
		return fmt.Errorf("%s is set but the network namespace cannot be read: %w", envInner, err)
	}
	if ns == outerNS {
		return fmt.Errorf("%s is set but this process is still in network namespace %s", envInner, ns)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("listing interfaces: %w", err)
	}
	if len(ifs) != 1 || ifs[0].Name != Loopback || ifs[0].Flags&net.FlagLoopback == 0 {
		names := make([]string, len(ifs))
		for i, ifi := range ifs {
			names[i] = ifi.Name
		}
		return fmt.Errorf("%s is set but network namespace %s is not fresh: interfaces %v, want only %s",
			envInner, ns, names, Loopback)
	}
	return nil
}
