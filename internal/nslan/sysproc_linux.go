package nslan

import (
	"fmt"
	"os"
	"os/exec"
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
	startErr := cmd.Start()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the lab's namespace: leave it locked, so
		// that it ends with this goroutine rather than run other
		// goroutines there. Its end kills the process (Pdeathsig).
		return fmt.Errorf("returning from %s: %w", ns, err)
	}
	runtime.UnlockOSThread()
	return startErr
}
