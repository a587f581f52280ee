package nslan

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// setDeathSignal makes cmd's process get SIGKILL when the thread that
// started it exits, so that a crashed test leaves no process running in a
// namespace. (The Go runtime keeps its threads for the process's
// lifetime unless a goroutine locked to one exits.)
func setDeathSignal(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// startIn starts cmd in the network namespace at ns, without nsenter: the
// calling thread enters the namespace, forks the process there (a child
// starts in its parent thread's namespaces) and returns to its own. That
// saves the process a nsenter exec, a millisecond or two that timings of
// a process's start would otherwise count.
func startIn(cmd *exec.Cmd, ns string) error {
	var startErr error
	if err := inNetns(ns, func() { startErr = cmd.Start() }); err != nil {
		return err
	}
	return startErr
}

// inNetns runs f on the calling thread moved into the network namespace at
// path ns, then moves the thread back. If it cannot come back, the thread
// stays locked to the calling goroutine, so that no other goroutine runs
// in the lab's namespace; it ends with that goroutine, and its end kills
// the processes started from it (Pdeathsig).
func inNetns(ns string, f func()) error {
	target, err := os.Open(ns)
	if err != nil {
		return err
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering %s: %w", ns, err)
	}
	f()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("returning from %s: %w", ns, err)
	}
	runtime.UnlockOSThread()
	return nil
}

// Do runs f on a thread in h's network namespace: the sockets f opens are
// h's, and stay h's after f returns. The thread then returns to the test's
// namespace and to the runtime.
func (h *Host) Do(f func()) error {
	return inNetns(filepath.Join("/run/netns", h.NS), f)
}
