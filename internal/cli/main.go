// Package cli is the pir command (cmd/pir is a main that calls Pir) and
// what pir-agent (cmd/pir-agent) shares with it: the network flags, the
// printer of events and the adviser. The agent is a command of its own
// because it serves HTTP: nothing here imports net/http, whose code and
// initialisers cost every pir join member about 1.8 MiB of resident memory
// (docs/architecture.md, "Two commands").
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
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
                      their events, like avahi-browse; -t to list them once and
                      exit; -json for scripts
  pir genkey          print a new random group key, for -key-file
  pir version         print pir's version and VCS revision (also -version)
  pir help COMMAND    print a command's flags (also pir COMMAND -h)

Common flags:
  -group NAME   group name (default "pir")
  -port N       UDP port (default 9999)
  -iface LIST   comma-separated interfaces (default: every up multicast one)
  -4 / -6       IPv4 only / IPv6 only (default: both where available)
  -json         one JSON object per line instead of text
  -mdns         join: publish and discover over mDNS/DNS-SD (avahi-browse
                and python-zeroconf see the members)
  -mdns TYPE    watch: list the services of a DNS-SD type (_http._tcp...)
                over mDNS, or "pir" for the group's members
  -key-file F   authenticate every message with the group keys in F

Peers speaking the original pir format (GROUP|ID|HEALTH|COMMS on 224.0.0.1)
are seen and probed like any other.

pir-agent, a command of its own, serves groups to programs in any language
over DNS and HTTP; run pir-agent -h.
`

// Start prepares the process for either command and returns the context
// that ends when the user interrupts it.
func Start() context.Context {
	if os.Getenv("GOMAXPROCS") == "" {
		// One thread runs Go code unless GOMAXPROCS says otherwise. pir's
		// work is small and comes in bursts: when a member joins, every
		// other answers and probes it at once. With one thread the runtime
		// hands work between goroutines without waking idle threads to
		// look for it; a member spends a fifth less CPU on a join
		// (docs/performance.md).
		runtime.GOMAXPROCS(1)
	}
	if os.Getenv("GOGC") == "" {
		// Collect when the heap has grown by a quarter, not doubled. A
		// member's live heap is under 1 MiB, but at GOGC 100 the runtime
		// waits for 4 MiB (the floor scales with GOGC): a member's
		// resident memory climbed past 10 MiB before each collection.
		// At 25 it collects at about 1 MiB (keepGCPercent says why GOGC
		// alone does not get there): every 10 s or so in a 100-member
		// group, each collection of so small a heap taking well under a
		// millisecond (tools/rss/rss.sh, docs/performance.md).
		keepGCPercent(gcPercent)
	}
	// The signals stay caught until the process ends: one that comes
	// while pir is leaving or exiting (a second Ctrl-C, a supervisor that
	// sends SIGTERM twice) changes nothing, where the default action would
	// end pir with a signal status instead of its own.
	ctx, _ := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// With SIGPIPE caught, a write to a closed pipe (pir watch | head -1)
	// fails with EPIPE instead of killing pir: a member then still leaves
	// gracefully (see printer).
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	return ctx
}

// commands are pir's commands, each run with its arguments.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"demo":  demo,
	"join":  join,
	"watch": watch,
	"agent": movedAgent,
	"genkey": func(_ context.Context, args []string, stdout, stderr io.Writer) error {
		return genkey(args, stdout, stderr)
	},
	"version": func(_ context.Context, args []string, stdout, stderr io.Writer) error {
		return version(args, stdout)
	},
}

// Pir runs the pir command args names until it ends or ctx is done, and
// returns the exit code: 0, 1 when the command failed, 2 for a usage
// error.
func Pir(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "help", "-h", "-help", "--help":
		if cmd != "help" || len(rest) == 0 {
			fmt.Fprint(stdout, usage)
			return 0
		}
		if len(rest) > 1 {
			err = UsageErrorf("pir help", false, "want one command, got %q", rest)
			break
		}
		if _, ok := commands[rest[0]]; !ok {
			err = UsageErrorf("pir help", false, "unknown command %q; run 'pir help' for the commands", rest[0])
			break
		}
		err = commands[rest[0]](ctx, []string{"-h"}, stdout, stderr)
	case "-version", "--version":
		err = version(rest, stdout)
	default:
		c, ok := commands[cmd]
		if !ok {
			err = UsageErrorf("pir", false, "unknown command %q; run 'pir help' for the commands", cmd)
			break
		}
		err = c(ctx, rest, stdout, stderr)
	}
	return Exit("pir", err, stderr)
}

// movedAgent tells a user of the agent's old name where it went.
func movedAgent(context.Context, []string, io.Writer, io.Writer) error {
	return UsageErrorf("pir agent", false, "the agent is its own command now: run pir-agent (go run ./cmd/pir-agent)")
}

// Exit prints what the error of a command of prog means to the user and
// returns the exit code.
func Exit(prog string, err error, stderr io.Writer) int {
	var code exitCode
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: %s\n", ue.cmd, ue.msg)
		if ue.hint {
			fmt.Fprintf(stderr, "run '%s -h' for the flags\n", ue.cmd)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %s\n", prog, Printable(err.Error()))
		return 1
	}
}

// usageError is a command line pir cannot run: a bad flag, a bad value, a
// combination that makes no sense. run prints it on one line, prefixed by
// the command, and exits 2.
type usageError struct {
	cmd  string // "pir join"
	msg  string
	hint bool // add "run 'pir join -h' for the flags"
}

func (e *usageError) Error() string { return e.cmd + ": " + e.msg }

func UsageErrorf(cmd string, hint bool, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...), hint: hint}
}

// ParseFlags parses args into fs. Asked for help (-h), it prints fs's usage
// on stdout and returns flag.ErrHelp; a bad flag is a usageError of one
// line, without the usage the flag package would print.
func ParseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return err
	case err != nil:
		return UsageErrorf(fs.Name(), true, "%v", err)
	case fs.NArg() > 0:
		return UsageErrorf(fs.Name(), true, "unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// SetFlags returns the names of the flags given on the command line.
func SetFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// version prints the module version and the VCS revision pir was built
// from, as the build info records them.
func version(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return UsageErrorf("pir version", false, "unexpected argument %q", args[0])
	}
	fmt.Fprintln(stdout, versionString())
	return nil
}

func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "pir (no build information)"
	}
	s := "pir " + bi.Main.Version
	if bi.Main.Version == "" {
		s = "pir (unknown version)"
	}
	var rev, at, modified string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.time":
			at = kv.Value
		case "vcs.modified":
			modified = kv.Value
		}
	}
	if rev != "" {
		s += ", revision " + rev
		if modified == "true" {
			s += " (modified)"
		}
		if at != "" {
			s += " of " + at
		}
	}
	return s + ", " + bi.GoVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
}
