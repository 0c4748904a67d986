package dashboard

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestStandardLibraryOnly keeps the package's own code on the standard
// library and Causeway's core: a program that mounts the page pays for no
// other dependency (and no cgo).
func TestStandardLibraryOnly(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(p, "/")
			core := p == "github.com/causeway-go/causeway/stages" || p == "github.com/causeway-go/causeway/topology"
			if p == "C" || (strings.Contains(first, ".") && !core) {
				t.Errorf("%s imports %q: only the standard library, stages and topology", f, p)
			}
		}
	}
}
