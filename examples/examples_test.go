// Package examples holds the runnable example programs; this test runs each
// one as its README says (no flags: embedded-broker demo) and checks its
// output.
package examples

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestExamplesRunAsDocumented(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every example: skipped with -short")
	}
	for _, tc := range []struct {
		dir  string
		args []string
		want []string
	}{
		{"./linesplit", nil, []string{"11 output records:", "doc-1\tall", "doc-1\tkafka", "doc-3\tsummit", "Sub-topology: 0"}},
		{"./pipe", nil, []string{"3 output records:", "k1\tfirst", "k2\tsecond", "k3\tthird"}},
		// Kafka Streams' WordCountDemo input and final counts.
		{"./wordcount", nil, []string{"final counts of 8 words", "  all\t1\n", "  kafka\t3\n", "  streams\t2\n", "  summit\t1\n", "counts-repartition"}},
		{"./wordcount", []string{"-guarantee", "exactly_once"}, []string{"final counts of 8 words", "  all\t1\n", "  kafka\t3\n", "  streams\t2\n", "  summit\t1\n"}},
	} {
		t.Run(strings.Join(append([]string{tc.dir}, tc.args...), " "), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, "go", append([]string{"run", tc.dir}, tc.args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("go run %s: %v\n%s", tc.dir, err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output of %s lacks %q:\n%s", tc.dir, w, out)
				}
			}
		})
	}
}
