package spill_test

import (
	"testing"

	"go.uber.org/goleak"
)

// No test leaves a goroutine behind: a Log starts none of its own.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
