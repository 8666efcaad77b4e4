package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kadm"
)

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
	fmt.Fprintln(os.Stderr, crashChildReady)
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

// TestAppCrashRecovery kills a child process running the application with
// SIGKILL at seeded random points while input keeps arriving, restarts it,
// and finally lets it finish: under at-least-once every input word must be
// in the output (duplicates allowed). Set RUNNEL_CRASH_SEED to replay a
// run.
func TestAppCrashRecovery(t *testing.T) {
	skipShort(t)
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
