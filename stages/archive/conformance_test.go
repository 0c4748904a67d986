package archive_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/causeway-go/causeway/stages/archive"
	"github.com/causeway-go/causeway/topology/topologytest/sinktest"
)

// The archive passes the conformance suite every batch handler runs.
func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Harness[string] {
		dir := t.TempDir()
		w := newWriter(t, archive.Config[string]{Dir: dir})
		return sinktest.Harness[string]{
			Handle: w.HandleBatch,
			Make:   func(i int) string { return fmt.Sprintf(`{"data":{"id":"%d"}}`, i) },
			ID:     func(s string) string { return s[len(`{"data":{"id":"`) : len(s)-3] },
			Stored: func(context.Context, int) ([]string, error) {
				// HandleBatch returned: the lines are on disk already.
				rep, err := archive.Verify(dir, archive.VerifyOptions{})
				if err != nil || !rep.OK() {
					return nil, fmt.Errorf("verify: %v %+v", err, rep)
				}
				var ids []string
				for _, f := range gzFiles(t, dir) {
					for _, l := range readLines(t, f) {
						ids = append(ids, l[len(`{"data":{"id":"`):len(l)-3])
					}
				}
				return ids, nil
			},
			Ordered: true,
		}
	})
}
