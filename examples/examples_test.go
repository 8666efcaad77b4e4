// Package examples holds the runnable example programs; these tests run
// each one as its README says (no flags: embedded-broker demo) and check
// its output, then run them against clusters the tests start, as a user
// would against their own.
package examples

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/devbroker"
	"github.com/runnel-dev/runnel/internal/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
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

// TestExampleFlagErrors: bad flag values stop the program before it does
// anything, with a message naming the flag; -commit-interval reaches
// stream.Config (a negative one fails NewApp naming CommitInterval).
func TestExampleFlagErrors(t *testing.T) {
	t.Parallel()
	bin := build(t, "./pipe")
	props := filepath.Join(t.TempDir(), "client.properties")
	if err := os.WriteFile(props, []byte("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=u\nsasl.password=p\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"-guarantee", "exactly-once"}, 2, []string{`invalid value "exactly-once" for flag -guarantee`, "want at_least_once or exactly_once"}},
		{[]string{"-partitions", "3x"}, 2, []string{"for flag -partitions"}},
		{[]string{"-commit-interval", "soon"}, 2, []string{"for flag -commit-interval"}},
		{[]string{"-commit-interval", "-1s"}, 1, []string{"CommitInterval", "negative duration -1s"}},
		{[]string{"-client-config", props + ".missing"}, 2, []string{"-client-config", "no such file"}},
		{[]string{"-client-config", props}, 2, []string{"no cluster to connect to: give -brokers or bootstrap.servers"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, tc.args...).CombinedOutput()
			if code := exitCode(err); code != tc.code {
				t.Fatalf("exit code %d (%v), want %d:\n%s", code, err, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestExampleMissingTopic: against a cluster, a typo in -input fails at
// start with stream.ErrTopicMissing's message naming the topic and saying
// what to do, and creates no topic.
func TestExampleMissingTopic(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	bin := build(t, "./wordcount")
	broker := startBroker(t, devbroker.Config{Topics: map[string]int32{"text-lines": 2, "word-counts": 2}})

	out, err := exec.CommandContext(ctx, bin, "-brokers", strings.Join(broker.Brokers(), ","),
		"-input", "text-lnies", "-state-dir", t.TempDir()).CombinedOutput()
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit code %d (%v), want 1:\n%s", code, err, out)
	}
	for _, w := range []string{"topic does not exist", `source topic "text-lnies"`, "create it before starting the application"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	topics, err := broker.Admin().ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if topics.Has("text-lnies") {
		t.Errorf("the misspelt input topic was created: %v", topics.Names())
	}
}

// TestExampleSecuredCluster runs pipe against a cluster that requires SASL,
// reached through -client-config alone (bootstrap.servers and Java's
// sasl.jaas.config), then with a wrong password.
func TestExampleSecuredCluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	bin := build(t, "./pipe")
	broker := startBroker(t, devbroker.Config{
		Topics: map[string]int32{"in": 2, "out": 2},
		SASL:   []devbroker.User{{Mechanism: "PLAIN", Name: "runnel", Password: "s3cret"}},
	})
	cluster := &kafkatest.Cluster{Cluster: broker}
	properties := func(password string) string {
		path := filepath.Join(t.TempDir(), "client.properties")
		props := fmt.Sprintf(`# a Java client's client.properties
bootstrap.servers=%s
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \
    username="runnel" password="%s";
`, strings.Join(broker.Brokers(), ","), password)
		if err := os.WriteFile(path, []byte(props), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	t.Run("right password", func(t *testing.T) {
		p := startProgram(t, ctx, bin, "-client-config", properties("s3cret"), "-input", "in", "-output", "out",
			"-app-id", "secured", "-state-dir", t.TempDir(), "-commit-interval", "100ms")
		in := []*kgo.Record{{Topic: "in", Value: []byte("a")}, {Topic: "in", Value: []byte("b")}, {Topic: "in", Value: []byte("c")}}
		if err := cluster.Produce(ctx, in...); err != nil {
			t.Fatal(err)
		}
		got, err := cluster.ReadCommitted(ctx, "out", len(in))
		if err != nil {
			t.Fatalf("%v; program output:\n%s", err, p.out.String())
		}
		var values []string
		for _, r := range got {
			values = append(values, string(r.Value))
		}
		slices.Sort(values)
		if want := []string{"a", "b", "c"}; !slices.Equal(values, want) {
			t.Errorf("output values %q, want %q", values, want)
		}
		if err := p.interrupt(); err != nil {
			t.Fatalf("after SIGINT: %v, want exit 0; output:\n%s", err, p.out.String())
		}
	})

	// kfake closes the connection of a failed login where Kafka answers
	// SASL_AUTHENTICATION_FAILED; either way the program exits with an
	// error that says authentication failed, having processed nothing.
	t.Run("wrong password", func(t *testing.T) {
		if err := cluster.Produce(ctx, &kgo.Record{Topic: "in", Value: []byte("unseen")}); err != nil {
			t.Fatal(err)
		}
		p := startProgram(t, ctx, bin, "-client-config", properties("wrong"), "-input", "in", "-output", "out",
			"-app-id", "wrong-password", "-state-dir", t.TempDir())
		select {
		case <-p.done:
		case <-ctx.Done():
			t.Fatalf("the program did not exit; output:\n%s", p.out.String())
		}
		if p.err == nil {
			t.Fatalf("exit 0 with a wrong password, want an error; output:\n%s", p.out.String())
		}
		if out := p.out.String(); !strings.Contains(out, `stream: authentication failed (mechanism PLAIN, user "runnel")`) {
			t.Errorf("output does not say that authentication failed for user runnel:\n%s", out)
		}
		offsets, err := cluster.CommittedOffsets(ctx, "wrong-password", "in")
		if err != nil || len(offsets) != 0 {
			t.Errorf("group wrong-password committed %v (%v), want nothing", offsets, err)
		}
	})
}

// binDir holds the examples built by build, for the package's tests.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "runnel-examples-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// builds holds the result of building each example once for all tests.
var builds struct {
	sync.Mutex
	errs map[string]error // by dir; present once built
}

// build compiles the example in dir (once per test run) and returns the
// binary's path, so tests can signal the program itself (go run would be
// in between).
func build(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(binDir, filepath.Base(dir))
	builds.Lock()
	defer builds.Unlock()
	err, built := builds.errs[dir]
	if !built {
		if out, buildErr := exec.Command("go", "build", "-o", bin, dir).CombinedOutput(); buildErr != nil {
			err = fmt.Errorf("go build %s: %v\n%s", dir, buildErr, out)
		}
		if builds.errs == nil {
			builds.errs = map[string]error{}
		}
		builds.errs[dir] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func startBroker(t *testing.T, cfg devbroker.Config) *devbroker.Cluster {
	t.Helper()
	b, err := devbroker.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// exitCode returns the exit code of a finished command's error (0 for nil,
// -1 for an error that is not an exit status).
func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}

// program is an example running in the background.
type program struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when Wait has returned, with err set
	err  error
}

// startProgram starts bin with args; the test's cleanup kills it if it is
// still running.
func startProgram(t *testing.T, ctx context.Context, bin string, args ...string) *program {
	t.Helper()
	p := &program{cmd: exec.CommandContext(ctx, bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// interrupt sends SIGINT and returns the program's exit error.
func (p *program) interrupt() error {
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		return err
	}
	<-p.done
	return p.err
}

// syncBuffer is a bytes.Buffer safe for a child's output written while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
