package postgres_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The sink is generic: it imports no producer and no data model of a
// reference topology (tweets live in topologies/tweets).
func TestSinkImportsNoTopologyData(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range []string{"github.com/causeway-go/causeway/producers/", "github.com/causeway-go/causeway/topologies"} {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("stages/postgres links %s", pkg)
			}
		}
	}
}
