package stream_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves goroutines behind: Apps, their
// clients and the embedded clusters must all be shut down.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
