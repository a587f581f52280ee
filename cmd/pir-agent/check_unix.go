//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// killGroup starts cmd in a process group of its own and has its context
// kill the whole group, so that a check's children (a shell's commands)
// end with it rather than linger.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
