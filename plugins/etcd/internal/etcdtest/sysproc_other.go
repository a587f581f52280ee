//go:build !linux

package etcdtest

import "os/exec"

func setSysProcAttr(*exec.Cmd) {}
