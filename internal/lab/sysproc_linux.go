package lab

import (
	"os/exec"
	"syscall"
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
