package topology_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The core links no cgo, no database driver and no network client: a
// program that only declares topologies pays for none of them.
func TestCoreImportsNoCgoNoDriverNoHTTP(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../stages/...", "../topology/...", "../internal/core/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{"runtime/cgo", "C", "net/http", "golang.org/x/net/http2", "database/sql", "github.com/jackc/pgx", "github.com/confluentinc/confluent-kafka-go"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("the core links %s", pkg)
			}
		}
	}
}
