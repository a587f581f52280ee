package cli

import (
	"encoding/hex"
	"flag"
	"fmt"
	"io"

	"github.com/pirlan/pir/codec/auth"
)

// genkey prints a new random group key in hex on stdout, and its key ID on
// stderr.
func genkey(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pir genkey", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pir genkey > group.key\n\nPrint a new random 32-byte group key in hex. Give every member the file\n(chmod 600) with -key-file; to rotate, put the new key first and the old\nsecond, roll it out, then drop the old line.\n")
	}
	if err := ParseFlags(fs, args, stdout); err != nil {
		return err
	}
	key := auth.NewKey()
	id, err := auth.KeyIDOf(key)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, hex.EncodeToString(key))
	fmt.Fprintf(stderr, "key ID %s\n", id)
	return nil
}
