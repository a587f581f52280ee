package internal

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// corePath is the core module's path: its internal packages are
// corePath + "/internal" and below.
const corePath = "github.com/pirlan/pir"

// allowed are the modules, by directory from the repository root, that may
// import the core's internal packages: tools/ is never published.
var allowed = map[string]bool{"tools": true}

// TestNoOtherModuleImportsInternal fails if a Go file of any module in the
// repository but the core and tools/ (plugins/*, and any module added
// later) imports a package under the core's internal/, test files included:
// a published plugin would then depend on an API with no compatibility
// promise, and its tests would break with any change here.
func TestNoOtherModuleImportsInternal(t *testing.T) {
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	require.Contains(t, string(mod), "module "+corePath+"\n", "the test must run from the core module's internal/")

	modules := otherModules(t, root)
	require.NotEmpty(t, modules, "no other module found: the walk is broken")
	require.Contains(t, modules, filepath.Join("plugins", "etcd"), "the walk must find the plugins")

	fset := token.NewFileSet()
	files := 0
	for _, dir := range modules {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if skipDir(d.Name()) && path != filepath.Join(root, dir) {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			files++
			for _, imp := range f.Imports {
				p, err := strconv.Unquote(imp.Path.Value)
				if err != nil {
					return err
				}
				if p == corePath+"/internal" || strings.HasPrefix(p, corePath+"/internal/") {
					rel, _ := filepath.Rel(root, path)
					t.Errorf("%s (module %s) imports %s: only the core module and tools/ may import the core's internal packages",
						rel, dir, p)
				}
			}
			return nil
		})
		require.NoError(t, err)
	}
	require.NotZero(t, files, "no Go file checked")
}

// otherModules returns the directories, relative to root, of every module
// in the repository but the core and the allowed ones.
func otherModules(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel != "." && (skipDir(d.Name()) || allowed[filepath.ToSlash(rel)]) {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() == "go.mod" && rel != "go.mod" {
			out = append(out, filepath.Dir(rel))
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

// skipDir reports the directories the go command ignores.
func skipDir(name string) bool {
	return name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}
