package stream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// crashChildEnv carries a crashChildSpec (JSON) to the re-executed test
// binary; TestCrashChild runs only when it is set.
const crashChildEnv = "RUNNEL_CRASH_CHILD"

type crashChildSpec struct {
	Brokers       []string
	AppID         string
	Input, Output string
	// Counts receives a stateful branch: the count of words per (word
	// suffix, line key), kept in a store under StateDir, which outlives
	// the child processes.
	Counts   string
	StateDir string
	// CacheMaxBytes and PurgeInterval set Config.CacheMaxBytes and
	// Config.RepartitionPurgeInterval; zero means the default.
	CacheMaxBytes int64
	PurgeInterval time.Duration
	// Guarantee sets Config.Guarantee (default AtLeastOnce); InstanceID
	// Config.InstanceID.
	Guarantee  stream.Guarantee
	InstanceID string
	// CountByKey replaces the linesplit application with a count of the
	// input records per key (store "counts", no repartition) to Output.
	CountByKey bool
	// TransactionTimeout sets Config.TransactionTimeout; zero means the
	// default.
	TransactionTimeout time.Duration
}

// TestCrashChild is the child process of the crash tests and of
// BenchmarkRecovery: a linesplit application with a stateful count branch
// (or spec.CountByKey's count), at spec.Guarantee with a 100ms commit
// interval, running until SIGTERM (clean shutdown) or SIGKILL.
func TestCrashChild(t *testing.T) {
	raw := os.Getenv(crashChildEnv)
	if raw == "" {
		t.Skip("child process of the crash tests")
	}
	var spec crashChildSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	b := stream.NewBuilder()
	if spec.CountByKey {
		grouped := stream.From(b, spec.Input, serde.String, serde.String).GroupByKey(serde.String, serde.String)
		grouped.Count(stream.Materialized("counts")).ToStream().To(spec.Output, serde.String, serde.Int64)
	} else {
		crashTopology(b, spec)
	}
	app, err := stream.NewApp(b, stream.Config{
		AppID:                    spec.AppID,
		Brokers:                  spec.Brokers,
		StateDir:                 spec.StateDir,
		Guarantee:                spec.Guarantee,
		InstanceID:               spec.InstanceID,
		TransactionTimeout:       spec.TransactionTimeout,
		CommitInterval:           100 * time.Millisecond,
		ClientOpts:               e2eGroupOpts(),
		Logger:                   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
		CacheMaxBytes:            spec.CacheMaxBytes,
		RepartitionPurgeInterval: spec.PurgeInterval,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// crashTopology adds the child's application to b: the words of each
// line to spec.Output, and their count per (word suffix, line key) in the
// store "counts" to spec.Counts. Tests that check the child's state run it
// in process too.
func crashTopology(b *stream.Builder, spec crashChildSpec) {
	lines := stream.From(b, spec.Input, serde.String, serde.String)
	words := stream.FlatMapValues(lines, strings.Fields)
	words.To(spec.Output, serde.String, serde.String)
	groups := stream.GroupBy(words, func(k, w string) string { return w[len(w)-1:] + "-" + k }, serde.String, serde.String)
	groups.Count(stream.Materialized("counts")).ToStream().To(spec.Counts, serde.String, serde.Int64)
}

// crashChild is one run of the child process.
type crashChild struct {
	cmd  *exec.Cmd
	out  *e2eLog       // combined stdout and stderr
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, set before done is closed
}

func (e *e2eEnv) startCrashChild(spec crashChildSpec) *crashChild {
	e.t.Helper()
	return startChild(e.ctx, e.t, spec)
}

// startChild starts a child process running spec. If still running, it
// is killed when tb ends; when ctx ends first (a failed test's context
// ends before its cleanups run), it dumps its goroutines into its log
// instead.
func startChild(ctx context.Context, tb testing.TB, spec crashChildSpec) *crashChild {
	tb.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		tb.Fatal(err)
	}
	c := &crashChild{out: &e2eLog{}, done: make(chan struct{})}
	c.cmd = exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	c.cmd.Env = append(os.Environ(), crashChildEnv+"="+string(raw))
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	// A child still running when ctx ends (the test failed, or the child
	// hangs) dumps its goroutines into its log; one stopped with SIGSTOP
	// is continued first.
	c.cmd.Cancel = func() error {
		c.cmd.Process.Signal(syscall.SIGCONT)
		return c.cmd.Process.Signal(syscall.SIGQUIT)
	}
	if err := c.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	tb.Cleanup(func() {
		if ctx.Err() == nil {
			c.cmd.Process.Kill()
		}
		select {
		case <-c.done: // killed, or dumped its goroutines as ctx ended
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// exited reports whether the child has exited, and how.
func (c *crashChild) exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
}

// TestAppCrashRecovery kills a child process running the application with
// SIGKILL at seeded random points while input keeps arriving, restarts it,
// and finally lets it finish: under at-least-once every input word must be
// in the output (duplicates allowed). Set RUNNEL_CRASH_SEED to replay a
// run.
func TestAppCrashRecovery(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child process")
	}
	rng, seed := seededRand(t, "RUNNEL_CRASH_SEED")

	e := newE2E(t, 3*time.Minute)
	spec := crashChildSpec{Brokers: e.c.Brokers(), AppID: "crash-e2e", Input: "lines", Output: "words", Counts: "counts", StateDir: t.TempDir()}
	e.crashTopics(spec)
	in := e.newChaosInput(spec.Input)
	adm := kadm.NewClient(in.cl)

	sumEnds := func(topic string) (int64, error) { return endOffsetSum(e.ctx, adm, topic) }
	// background produces chunks of 10 lines every 10ms until stopped (at
	// most 10 000 lines), so the child is busy when it is killed.
	background := func() (stop func()) {
		return produceInBackground(t, func() error { return in.produce(e, 10) }, func() bool {
			in.mu.Lock()
			defer in.mu.Unlock()
			return in.lines < 10_000
		})
	}
	mustProduce := func(n int) {
		t.Helper()
		if err := in.produce(e, n); err != nil {
			t.Fatal(err)
		}
	}

	const kills = 3
	mustProduce(300) // input before the first start
	for round := range kills {
		child := e.startCrashChild(spec)
		outBefore, err := sumEnds(spec.Output)
		if err != nil {
			t.Fatal(err)
		}
		stop := background()
		e.waitFor(fmt.Sprintf("round %d: the child to produce output", round), func() (bool, error) {
			if ok, err := child.exited(); ok {
				return false, fmt.Errorf("child exited early (%v):\n%s", err, child.out.tail(50))
			}
			n, err := sumEnds(spec.Output)
			return n > outBefore, err
		})
		// The kill point: a seeded random delay after the first output,
		// which spans the child's first commits (every 100ms).
		delay := time.Duration(rng.Int64N(int64(700 * time.Millisecond)))
		<-time.After(delay)
		killChild(t, child)
		stop()
		n, _ := sumEnds(spec.Output)
		committed := e.committed(spec.AppID, spec.Input)
		t.Logf("round %d: SIGKILL %v after the first output; %d output records in the round; %d lines produced; committed %v",
			round, delay.Round(time.Millisecond), n-outBefore, in.lines, committed)
		mustProduce(100) // input while it is down
	}

	// Last run: all input processed and committed, then a clean shutdown.
	child := e.startCrashChild(spec)
	mustProduce(200)
	inEnd, err := sumEnds(spec.Input)
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor("the last child to commit all input", func() (bool, error) {
		if ok, err := child.exited(); ok {
			return false, fmt.Errorf("child exited early (%v):\n%s", err, child.out.tail(50))
		}
		offs, err := e.c.CommittedOffsets(e.ctx, spec.AppID, spec.Input)
		var sum int64
		for _, o := range offs {
			sum += o
		}
		return sum == inEnd, err
	})
	// And the count branch's repartition topic, fed by the input.
	e.e2eWaitCommitted(spec.AppID, []string{spec.AppID + "-counts-repartition"})
	terminateChild(t, child)
	e.waitChildShutdown("the last child to shut down", "child", child, 50)

	words, truth, lines := in.snapshot()
	out := e.readAll(spec.Output)
	got := checkWordsDelivered(t, out, words)
	if len(got) != len(words) {
		t.Errorf("output has %d distinct words, want %d", len(got), len(words))
	}
	// The stateful branch: at-least-once may count a record twice after
	// a crash, never zero times.
	over := checkCountsAtLeast(t, e.e2eFinalCounts(spec.Counts), truth)
	t.Logf("seed %d: %d input lines, %d words, %d output records, %d duplicates after %d SIGKILLs; counts over the truth by %d in all",
		seed, lines, len(words), len(out), len(out)-len(got), kills, over)
}

// killChild kills c with SIGKILL and waits until it is gone.
func killChild(t testing.TB, c *crashChild) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.done
}

// terminateChild sends c SIGTERM, asking it to shut down cleanly.
func terminateChild(t testing.TB, c *crashChild) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// waitChildShutdown waits (as what) until c has exited, failing the test
// if it exits with an error: a failed exit is reported as name's, with
// the last tail lines of its log.
func (e *e2eEnv) waitChildShutdown(what, name string, c *crashChild, tail int) {
	e.t.Helper()
	e.waitFor(what, func() (bool, error) {
		ok, err := c.exited()
		if ok && err != nil {
			if errors.As(err, new(*exec.ExitError)) {
				return false, fmt.Errorf("%s failed (%v):\n%s", name, err, c.out.tail(tail))
			}
			return false, err
		}
		return ok, nil
	})
}

// crashTopics creates the input, output and counts topics of spec, with
// three partitions each.
func (e *e2eEnv) crashTopics(spec crashChildSpec) {
	e.t.Helper()
	for _, topic := range []string{spec.Input, spec.Output, spec.Counts} {
		e.topic(topic, 3)
	}
}

// endOffsetSum returns the sum of topic's end offsets (high watermarks).
func endOffsetSum(ctx context.Context, adm *kadm.Client, topic string) (int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	return sum, ends.Error()
}

// seededRand returns a random source seeded from the environment variable
// env (to replay a run) or the clock, and the seed, which is logged when
// the test fails.
func seededRand(t *testing.T, env string) (*rand.Rand, uint64) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(env); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with %s=%d", env, seed)
		}
	})
	return rand.New(rand.NewPCG(seed, seed)), seed
}

// checkWordsDelivered checks, for at-least-once, that every input word is
// among the values of out, and returns how often each value occurs.
func checkWordsDelivered(t *testing.T, out []*kgo.Record, words []string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, r := range out {
		got[string(r.Value)]++
	}
	missing := 0
	for _, w := range words {
		if got[w] == 0 {
			if missing < 10 {
				t.Errorf("word %s of the input is missing from the output", w)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d words lost", missing, len(words))
	}
	return got
}

// checkCountsAtLeast checks, for at-least-once, that final has a count for
// every key of truth and none below it, and returns by how much the counts
// exceed the truth in all.
func checkCountsAtLeast(t *testing.T, final, truth map[string]int64) (over int64) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(truth)) {
		if final[k] < truth[k] {
			t.Errorf("count of %s is %d, below the true %d", k, final[k], truth[k])
		}
		over += final[k] - truth[k]
	}
	if len(final) != len(truth) {
		t.Errorf("counts for %d keys, want %d", len(final), len(truth))
	}
	return over
}
