package discovery_test

import (
	"go/build"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The engine imports the interfaces only, no implementation of them, and
// codecs import no transport (issue 14; docs/architecture.md). Test files
// may import what they like.
func TestImportBoundaries(t *testing.T) {
	for dir, forbidden := range map[string][]string{
		".":             {"github.com/pirlan/pir/codec/", "github.com/pirlan/pir/transport/"},
		"../codec":      {"github.com/pirlan/pir/transport"},
		"../codec/pipe": {"github.com/pirlan/pir/transport"},
		"../codec/auth": {"github.com/pirlan/pir/transport"},
	} {
		p, err := build.ImportDir(dir, 0)
		require.NoError(t, err, dir)
		for _, imp := range p.Imports {
			for _, f := range forbidden {
				assert.False(t, strings.HasPrefix(imp, f), "%s imports %s", dir, imp)
			}
		}
	}
}

// The core a member links, and the transports it usually runs on, link
// neither net/http nor crypto/tls: their package initialisers and the code
// around every page they touch cost each member about 1.5 MiB of resident
// memory (the kernel maps code in 64 kB blocks), even when no HTTP probe
// ever runs. examples/basic, static, three members in a netns, VmRSS after
// 15 s: 7.5 MiB with net/http in package healthcheck; 6.85 MiB with a
// prober free of net/http that kept crypto/tls for https; 5.0 MiB with
// neither (binary 10.3 MB -> 5.7 MB). Issue 15 asks for at most 8.
// HTTPProber speaks HTTP/1.1 itself and leaves TLS to a dialer the
// application supplies; the net/http handler for an application's own mux
// lives in healthcheck/httphealth. Neither may transport/mdns nor the pir
// command (cmd/pir), whose HTTP server, the agent's, is a command of its
// own (cmd/pir-agent; docs/architecture.md, "Two commands"); nor may they
// link github.com/miekg/dns, which imports crypto/tls, crypto/x509 and
// their ciphers (DNSSEC, DNS over TLS): transport/mdns has its own DNS
// wire code, 1.7 MB of binary and about 0.9 MiB of a member's resident
// memory less (docs/architecture.md, "Our own DNS wire code"). The test-support
// packages (codectest, healthchecktest) import testify, which links
// net/http: they are not listed.
func TestNoHTTPInCore(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	for _, tc := range []struct {
		pkgs      []string
		forbidden []string
	}{
		{
			[]string{"../healthcheck", ".", "../codec", "../codec/pipe", "../codec/auth", "../score", "../transport", "../transport/multicast",
				"../transport/mdns", "../cmd/pir"},
			[]string{"net/http", "crypto/tls", "github.com/miekg/dns"},
		},
	} {
		out, err := exec.Command(gobin, append([]string{"list", "-deps"}, tc.pkgs...)...).CombinedOutput()
		require.NoError(t, err, "go list: %s", out)
		deps := strings.Fields(string(out))
		for _, f := range tc.forbidden {
			assert.False(t, slices.Contains(deps, f), "%v link %s", tc.pkgs, f)
		}
	}
}
