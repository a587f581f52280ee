//go:build !linux

package lab

import "os/exec"

// setDeathSignal does nothing: there are no labs outside Linux.
func setDeathSignal(*exec.Cmd) {}
