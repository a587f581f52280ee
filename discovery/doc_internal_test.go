package discovery

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"reflect"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The package doc names the default policy as the type Config's default
// Policy has: "the default policy is [score.PhiAccrual]". It fails when
// either changes without the other.
func TestPackageDocNamesDefaultPolicy(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "doc.go", nil, parser.ParseComments)
	require.NoError(t, err)
	p, err := doc.NewFromFiles(fset, []*ast.File{f}, "github.com/pirlan/pir/discovery")
	require.NoError(t, err)

	typ := reflect.TypeOf(Config{}.WithDefaults().Policy)
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	want := "score." + typ.Name()

	named := regexp.MustCompile(`default policy is \[(\w+\.\w+)\]`).FindAllStringSubmatch(p.Doc, -1)
	require.Len(t, named, 1, "the package doc says once which policy is the default:\n%s", p.Doc)
	assert.Equal(t, want, named[0][1])
}
