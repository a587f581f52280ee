package memberlist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// metaVersion is the first byte of the node metadata this package puts in
// memberlist: the version of its layout.
const metaVersion = 1

// metaHeader is the size of the metadata before the site name: the
// version and the relay port.
const metaHeader = 3

// MaxSite is the longest Config.Site, in bytes: the site travels in
// memberlist's node metadata, which holds at most 512 bytes.
const MaxSite = 255

// errMeta is wrapped by every error parseMeta returns.
var errMeta = errors.New("memberlist: bad node metadata")

// nodeMeta is what a node tells the cluster about itself, in memberlist's
// node metadata: where it takes relayed datagrams and which site it is on.
//
// The layout, version 1:
//
//	byte 0     1 (the version)
//	bytes 1-2  the relay port, big-endian, 1 to 65535; the relay address
//	           is the node's memberlist address with this port
//	bytes 3-   the site name, UTF-8, 0 to MaxSite bytes (empty: no site)
//
// A node ignores another whose metadata it cannot parse: it sends it
// nothing. A later version keeps bytes 0-2 and may add fields after a
// separator that version 1 names cannot contain (a byte 0x00).
type nodeMeta struct {
	relayPort uint16
	site      string
}

// appendMeta appends m's encoding to b.
func appendMeta(b []byte, m nodeMeta) []byte {
	b = append(b, metaVersion)
	b = binary.BigEndian.AppendUint16(b, m.relayPort)
	return append(b, m.site...)
}

// parseMeta decodes metadata that appendMeta wrote, from the network: it
// never panics, and reports what is wrong.
func parseMeta(b []byte) (nodeMeta, error) {
	if len(b) < metaHeader {
		return nodeMeta{}, fmt.Errorf("%w: %d bytes, want at least %d", errMeta, len(b), metaHeader)
	}
	if b[0] != metaVersion {
		return nodeMeta{}, fmt.Errorf("%w: version %d, want %d", errMeta, b[0], metaVersion)
	}
	m := nodeMeta{relayPort: binary.BigEndian.Uint16(b[1:3])}
	if m.relayPort == 0 {
		return nodeMeta{}, fmt.Errorf("%w: relay port 0", errMeta)
	}
	site := b[metaHeader:]
	if err := checkSite(string(site)); err != nil {
		return nodeMeta{}, fmt.Errorf("%w: %w", errMeta, err)
	}
	m.site = string(site)
	return m, nil
}

// checkSite reports what is wrong with a site name.
func checkSite(s string) error {
	if len(s) > MaxSite {
		return fmt.Errorf("site is %d bytes long, want at most %d", len(s), MaxSite)
	}
	if !utf8.ValidString(s) {
		return errors.New("site is not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("site %q holds a control character", s)
		}
	}
	return nil
}
