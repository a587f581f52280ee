package discovery_test

import (
	"go/build"
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
