package etcdtest

import (
	"os/exec"
	"syscall"
)

// setSysProcAttr kills etcd if the test process dies without cleaning up.
func setSysProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
