//go:build !linux

package nslan

import (
	"errors"
	"os/exec"
)

// setDeathSignal does nothing: there are no labs outside Linux.
func setDeathSignal(*exec.Cmd) {}

// startIn fails: there are no labs outside Linux.
func startIn(*exec.Cmd, string) error { return errors.New("lab: network namespaces need Linux") }

// Do fails: there are no labs outside Linux.
func (h *Host) Do(func()) error { return errors.New("lab: network namespaces need Linux") }
