// Command pir-agent serves pir groups to programs in any language: DNS
// queries about their members (dig @127.0.0.1 -p 8600 web.pir. SRV), an
// HTTP API with a live page (http://127.0.0.1:8500/), and members
// announced on local services' behalf (-service, -check). See
// docs/agent.md, or run pir-agent -h for the flags.
//
// It is a command of its own, not a pir command, so that pir links no
// HTTP server (docs/architecture.md, "Two commands").
package main

import (
	"os"

	"github.com/pirlan/pir/internal/cli"
)

func main() {
	ctx := cli.Start()
	os.Exit(cli.Exit("pir-agent", agentCmd(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}
