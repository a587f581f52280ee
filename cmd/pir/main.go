// Command pir joins, watches and demonstrates pir discovery groups.
//
//	pir demo                     peers discovering each other on loopback
//	pir join  -group G -port P   be a member until interrupted
//	pir watch -group G -port P   list members and events without announcing
//	pir version                  the module version and VCS revision
//
// Run "pir help" or "pir help COMMAND" for the flags. The agent, which
// serves groups over DNS and HTTP to programs in any language, is a
// command of its own: cmd/pir-agent.
package main

import (
	"os"

	"github.com/pirlan/pir/internal/cli"
)

func main() {
	ctx := cli.Start()
	os.Exit(cli.Pir(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
