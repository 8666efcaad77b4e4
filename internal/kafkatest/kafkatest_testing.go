package kafkatest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// StartT is Start for tests and benchmarks: it fails tb on error and
// registers Close with tb.Cleanup.
func StartT(tb testing.TB, opts ...kfake.Opt) *Cluster {
	tb.Helper()
	c, err := Start(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}
