//go:build !linux

package netlab

import (
	"fmt"
	"os"
	"runtime"
)

func reexec() (code int, ran bool, reason string) {
	return 0, false, fmt.Sprintf("network namespaces need Linux, this is %s", runtime.GOOS)
}

func enter(string) {
	lab.reason = fmt.Sprintf("%s is set, but network namespaces need Linux, this is %s", envInner, runtime.GOOS)
}

func exitNow(code int) { os.Exit(code) }
