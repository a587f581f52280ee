package netlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckFreshRejectsTheOuterNamespace(t *testing.T) {
	ns, err := os.Readlink(nsPath)
	require.NoError(t, err)
	require.ErrorContains(t, checkFresh(ns), "still in network namespace")
}

func TestCheckFreshAcceptsThisNamespace(t *testing.T) {
	Require(t)
	require.NoError(t, checkFresh("net:[0]"))
}

// TestMainReexecs runs this test binary again without PIR_NETLAB, from
// inside the namespace, so that Main takes the outer path once more and
// makes a nested namespace: it checks that the inner run is in a namespace
// of its own, is Available, and that its exit code comes back.
func TestMainReexecs(t *testing.T) {
	Require(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	ours, err := os.Readlink(nsPath)
	require.NoError(t, err)

	run := func(mode string, env ...string) (string, int) {
		cmd := exec.Command(exe, "-test.run=^TestHelperProcess$", "-test.count=1")
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, envInner+"=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		if os.Getenv("GORACE") == "" {
			cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
		}
		cmd.Env = append(cmd.Env, "PIR_NETLAB_HELPER="+mode)
		cmd.Env = append(cmd.Env, env...)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return string(out), exit.ExitCode()
		}
		require.NoError(t, err, "output: %s", out)
		return string(out), 0
	}

	out, code := run("report")
	require.Equal(t, 0, code, "output: %s", out)
	assert.Contains(t, out, "helper: available=true ")
	m := regexp.MustCompile(`ns=(\S+)`).FindStringSubmatch(out)
	require.NotNil(t, m, "output: %s", out)
	assert.NotEqual(t, ours, m[1], "the nested run must be in a namespace of its own")

	// A PIR_NETLAB that lies (this namespace is the "outer" one) must not
	// make the run believe it is in a private namespace.
	out, code = run("report", envInner+"="+ours)
	require.Equal(t, 0, code, "output: %s", out)
	assert.Contains(t, out, "helper: available=false ns="+ours+"\n")

	out, code = run("exit")
	assert.Equal(t, 7, code, "exit code of the inner run, output: %s", out)
	assert.Contains(t, out, "helper: available=true ")
}

// TestHelperProcess is run by TestMainReexecs; on its own it skips.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("PIR_NETLAB_HELPER")
	if mode == "" {
		t.Skip("helper for TestMainReexecs")
	}
	ns, _ := os.Readlink(nsPath)
	fmt.Printf("helper: available=%t ns=%s\n", Available(), ns)
	if mode == "exit" {
		os.Exit(7)
	}
}
