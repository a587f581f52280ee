package main

import (
	"flag"
	"io"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// -foreign-health-hosts is the CLI's way to discovery.Config's
// ForeignHealthHosts (issue 12: "an option turns this off for unusual
// setups, and the CLI exposes it"); without it the safe default holds.
func TestForeignHealthHostsFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"-foreign-health-hosts"}, true},
	} {
		var n netFlags
		fs := flag.NewFlagSet("join", flag.ContinueOnError)
		n.register(fs)
		require.NoError(t, fs.Parse(c.args))
		cfg, err := n.groupConfig(hclog.NewNullLogger(), io.Discard)
		require.NoError(t, err)
		require.Equal(t, c.want, cfg.ForeignHealthHosts, "%v", c.args)
	}
}
