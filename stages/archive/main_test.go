package archive_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a Writer starts (rotation hooks, age timers) is gone
// once Close returned.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
