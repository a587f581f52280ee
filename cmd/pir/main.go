// Command pir joins, watches and demonstrates pir discovery groups.
//
//	pir demo                     peers discovering each other on loopback
//	pir join  -group G -port P   be a member until interrupted
//	pir watch -group G -port P   list members and events without announcing
//
// Run "pir help" or "pir COMMAND -h" for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

const usage = `pir discovers peers on a LAN over IPv4 or IPv6 multicast.

Usage:
  pir demo  [flags]   start several peers on loopback (in a private network
                      namespace where one can be made), show them discover each
                      other, detect a crashed peer and a graceful leave
  pir join  [flags]   join a group with a health-check server of its own and
                      print membership events until interrupted (Ctrl-C), then
                      leave gracefully
  pir watch [flags]   observe a group without announcing: print its members and
                      their events, like avahi-browse; -json for scripts
  pir genkey          print a new random group key, for -key-file

Every command takes -h for its flags. Common ones:
  -group NAME   group name (default "pir")
  -port N       UDP port (default 9999)
  -iface LIST   comma-separated interfaces (default: every up multicast one)
  -4 / -6       IPv4 only / IPv6 only (default: both where available)
  -json         one JSON object per line instead of text
  -mdns         join: publish and discover over mDNS/DNS-SD (avahi-browse,
                dns-sd and python-zeroconf see the members)
  -mdns TYPE    watch: list the services of a DNS-SD type (_http._tcp...)
                over mDNS, or "pir" for the group's members
  -key-file F   authenticate every message with the group keys in F

Peers speaking the original pir format (GROUP|ID|HEALTH|COMMS on 224.0.0.1)
are seen and probed like any other.
`

func main() {
	if os.Getenv("GOMAXPROCS") == "" {
		// One thread runs Go code unless GOMAXPROCS says otherwise. pir's
		// work is small and comes in bursts: when a member joins, every
		// other answers and probes it at once. With one thread the runtime
		// hands work between goroutines without waking idle threads to
		// look for it; a member spends a fifth less CPU on a join
		// (docs/performance.md).
		runtime.GOMAXPROCS(1)
	}
	// The signals stay caught until the process ends: one that comes
	// while pir is leaving or exiting (a second Ctrl-C, a supervisor that
	// sends SIGTERM twice) changes nothing, where the default action would
	// end pir with a signal status instead of its own.
	ctx, _ := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run runs one command until it ends or ctx is done, and returns the exit
// code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}

	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "demo":
		err = demo(ctx, rest, stdout, stderr)
	case "join":
		err = join(ctx, rest, stdout, stderr)
	case "watch":
		err = watch(ctx, rest, stdout, stderr)
	case "genkey":
		err = genkey(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "pir: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var code exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "pir: %v\n", err)
		return 1
	}
}

// errUsage reports bad flags; the flag package has printed why.
var errUsage = errors.New("usage")

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %v\n", fs.Args())
		fs.Usage()
		return errUsage
	}
	return nil
}
