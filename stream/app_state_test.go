package stream_test

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// End-to-end tests of state stores on the embedded cluster: restarts,
// restoration, task moves, the state directory lock and disk failures.

// TestAppStateRestartAndRestore: a clean restart with the same state dir
// restores nothing (its checkpoint is the changelog end); a state dir that
// missed updates made elsewhere restores exactly the changelog tail; an
// empty state dir restores the whole changelog; counts are exact
// throughout.
func TestAppStateRestartAndRestore(t *testing.T) {
	skipShort(t)
	e := newE2E(t, 2*time.Minute)
	e.topic("lines", 2)
	e.topic("counts-out", 2)
	const appID = "wc-restore"
	changelog := appID + "-counts-changelog"
	truth := map[string]int64{}
	dirA, dirB := t.TempDir(), t.TempDir()

	e.e2eCorpus("lines", 0, 300, 50, truth)
	rc := e.runWordCount(appID, dirA)
	if n, _, _ := rc.get(); n != 0 {
		t.Errorf("first run restored %d records from an empty changelog", n)
	}
	if got := e.e2eFinalCounts("counts-out"); !maps.Equal(got, truth) {
		t.Fatalf("counts after the first run:\n got %v\nwant %v", got, truth)
	}
	afterA := e.e2eEndSum(changelog)
	if afterA == 0 {
		t.Fatal("the changelog is empty after the first run")
	}

	// Same state dir, new input: nothing to restore.
	e.e2eCorpus("lines", 300, 100, 50, truth)
	rc = e.runWordCount(appID, dirA)
	if n, _, _ := rc.get(); n != 0 {
		t.Errorf("clean restart with the same state dir restored %d records, want 0", n)
	}
	if got := e.e2eFinalCounts("counts-out"); !maps.Equal(got, truth) {
		t.Fatalf("counts after the restart:\n got %v\nwant %v", got, truth)
	}
	afterA2 := e.e2eEndSum(changelog)

	// Another instance with an empty state dir restores everything, then
	// adds updates A has not seen.
	e.e2eCorpus("lines", 400, 100, 50, truth)
	rc = e.runWordCount(appID, dirB)
	if n, starts, ends := rc.get(); n != afterA2 || starts != ends || starts == 0 {
		t.Errorf("empty state dir: restored %d records (%d starts, %d ends), want the whole changelog, %d", n, starts, ends, afterA2)
	}
	if got := e.e2eFinalCounts("counts-out"); !maps.Equal(got, truth) {
		t.Fatalf("counts after the full restore:\n got %v\nwant %v", got, truth)
	}
	afterB := e.e2eEndSum(changelog)

	// A again: it replays only what B appended.
	e.e2eCorpus("lines", 500, 100, 50, truth)
	rc = e.runWordCount(appID, dirA)
	if n, _, _ := rc.get(); n != afterB-afterA2 {
		t.Errorf("stale state dir restored %d records, want the tail of %d (changelog %d, checkpoint sum %d)", n, afterB-afterA2, afterB, afterA2)
	}
	if got := e.e2eFinalCounts("counts-out"); !maps.Equal(got, truth) {
		t.Fatalf("counts after the tail restore:\n got %v\nwant %v", got, truth)
	}
	t.Logf("changelog records: %d after the first run, %d full restore, %d tail", afterA, afterA2, afterB-afterA2)
}

// TestAppStateTasksMove: two instances split the tasks; when one leaves,
// its tasks and their state move to the other and counts stay exact.
func TestAppStateTasksMove(t *testing.T) {
	skipShort(t)
	e := newE2E(t, 2*time.Minute)
	e.topic("lines", 4)
	e.topic("counts-out", 4)
	const appID = "wc-move"
	truth := map[string]int64{}
	newApp := func() (*stream.App, *restoreCounter) {
		b := stream.NewBuilder()
		e2eWordCount(b, "lines", "counts-out")
		cfg, _ := e.config(appID)
		rc := &restoreCounter{}
		cfg.RestoreListener = rc
		app, err := stream.NewApp(b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return app, rc
	}
	appA, _ := newApp()
	appB, rcB := newApp()
	e.e2eCorpus("lines", 0, 200, 40, truth)
	a := e.start(appA)
	e.e2eWaitCommitted(appID, e2eWordCountTopics(appID), a)
	b := e.start(appB)
	e.waitFor("B to restore its share of the state", func() (bool, error) {
		_, starts, ends := rcB.get()
		return starts > 0 && ends == starts, nil
	}, a, b)
	e.e2eCorpus("lines", 200, 200, 40, truth)
	e.e2eWaitCommitted(appID, e2eWordCountTopics(appID), a, b)
	if err := b.stop(t); err != nil {
		t.Fatalf("B: %v", err)
	}
	e.e2eCorpus("lines", 400, 200, 40, truth)
	e.e2eWaitCommitted(appID, e2eWordCountTopics(appID), a)
	if err := a.stop(t); err != nil {
		t.Fatalf("A: %v", err)
	}
	if got := e.e2eFinalCounts("counts-out"); !maps.Equal(got, truth) {
		t.Fatalf("counts:\n got %v\nwant %v", got, truth)
	}
}

// TestAppStateDirLocked: a second instance on the same state directory
// fails at start with state.ErrLocked.
func TestAppStateDirLocked(t *testing.T) {
	e := newE2E(t, time.Minute)
	e.topic("lines", 1)
	e.topic("counts-out", 1)
	dir := t.TempDir()
	newApp := func() *stream.App {
		b := stream.NewBuilder()
		e2eWordCount(b, "lines", "counts-out")
		cfg, _ := e.config("wc-lock")
		cfg.StateDir = dir
		app, err := stream.NewApp(b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return app
	}
	first := e.start(newApp())
	e.waitFor("the first instance to run", func() (bool, error) { return first.app.State() == stream.Running, nil }, first)
	err := e.start(newApp()).wait(t, 30*time.Second)
	if !errors.Is(err, state.ErrLocked) {
		t.Fatalf("second instance on the same state dir: Run = %v, want state.ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the directory %s", err, dir)
	}
}

// TestAppStateDiskFailure: when the state database cannot write, the app
// fails with the error and commits no offset past the state it could not
// persist.
func TestAppStateDiskFailure(t *testing.T) {
	e := newE2E(t, time.Minute)
	e.topic("lines", 1)
	e.topic("counts-out", 1)
	truth := map[string]int64{}
	var failing atomic.Bool
	fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failing.Load() && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return errorfs.ErrInjected
		}
		return nil
	}))
	b := stream.NewBuilder()
	e2eWordCount(b, "lines", "counts-out")
	cfg, _ := e.config("wc-disk")
	cfg.StateFS = fs
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.e2eCorpus("lines", 0, 50, 10, truth)
	run := e.start(app)
	e.e2eWaitCommitted("wc-disk", e2eWordCountTopics("wc-disk"), run)
	committedBefore := e.committed("wc-disk", "lines")[0]
	failing.Store(true)
	e.e2eCorpus("lines", 50, 50, 10, truth)
	err = run.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "injected error") {
		t.Fatalf("Run = %v, want the injected disk error", err)
	}
	if got := e.committed("wc-disk", "lines")[0]; got != committedBefore {
		t.Errorf("committed offset moved from %d to %d past state that was never persisted", committedBefore, got)
	}
	if app.State() != stream.Error {
		t.Errorf("state %v, want ERROR", app.State())
	}
}

// TestAppStateUndecodableValue: a stored value the store's serde cannot
// decode (here a 3-byte count put into the changelog by someone else)
// fails the task with an error naming the store and key; the app ends in
// ERROR and the failing record's offset is not committed.
func TestAppStateUndecodableValue(t *testing.T) {
	e := newE2E(t, time.Minute)
	e.topic("lines", 1)
	e.topic("counts-out", 1)
	const appID = "wc-corrupt"
	if err := e.c.CreateTopic(e.ctx, appID+"-counts-changelog", 1, map[string]*string{"cleanup.policy": ptr("compact")}); err != nil {
		t.Fatal(err)
	}
	e.produce(&kgo.Record{Topic: appID + "-counts-changelog", Key: []byte("bad"), Value: []byte{1, 2, 3}})
	e.produce(&kgo.Record{Topic: "lines", Value: []byte("good words")})
	b := stream.NewBuilder()
	e2eWordCount(b, "lines", "counts-out")
	cfg, _ := e.config(appID)
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	run := e.start(app)
	e.e2eWaitCommitted(appID, e2eWordCountTopics(appID), run)
	e.produce(&kgo.Record{Topic: "lines", Value: []byte("bad")})
	err = run.wait(t, 30*time.Second)
	var se *state.StoreError
	if !errors.As(err, &se) || se.Store != "counts" || string(se.Key) != "bad" {
		t.Fatalf("Run = %v, want a *state.StoreError for store counts, key bad", err)
	}
	if app.State() != stream.Error {
		t.Errorf("state %v, want ERROR", app.State())
	}
	repartition := appID + "-counts-repartition"
	ends, err := kadm.NewClient(e.client(t)).ListEndOffsets(e.ctx, repartition)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(repartition, 0)
	if got := e.committed(appID, repartition)[0]; got >= end.Offset {
		t.Errorf("committed offset %d of %s covers the failing record (end %d)", got, repartition, end.Offset)
	}
}

// TestAppStateInMemoryStore: an in-memory store is rebuilt from its
// whole changelog at every start, with exact counts.
func TestAppStateInMemoryStore(t *testing.T) {
	e := newE2E(t, time.Minute)
	e.topic("lines", 2)
	e.topic("counts-out", 2)
	const appID = "wc-mem"
	truth := map[string]int64{}
	runOnce := func() int64 {
		b := stream.NewBuilder()
		lines := stream.From(b, "lines", serde.String, serde.String)
		byWord := stream.GroupBy(stream.FlatMapValues(lines, strings.Fields), func(_, w string) string { return w }, serde.String, serde.String)
		byWord.Count(stream.Materialized("counts"), stream.WithInMemoryStore()).ToStream().To("counts-out", serde.String, serde.Int64)
		cfg, _ := e.config(appID)
		rc := &restoreCounter{}
		cfg.RestoreListener = rc
		app, err := stream.NewApp(b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		run := e.start(app)
		e.e2eWaitCommitted(appID, e2eWordCountTopics(appID), run)
		if err := run.stop(t); err != nil {
			t.Fatal(err)
		}
		n, _, _ := rc.get()
		return n
	}
	e.e2eCorpus("lines", 0, 100, 20, truth)
	if n := runOnce(); n != 0 {
		t.Errorf("first run restored %d records", n)
	}
	changelog := e.e2eEndSum(appID + "-counts-changelog")
	e.e2eCorpus("lines", 100, 100, 20, truth)
	if n := runOnce(); n != changelog {
		t.Errorf("second run restored %d records, want the whole changelog (%d)", n, changelog)
	}
	if got := e.e2eFinalCounts("counts-out"); !maps.Equal(got, truth) {
		t.Fatalf("counts:\n got %v\nwant %v", got, truth)
	}
}

// e2eCounter adds a Processor API counter: an in-memory, cached store
// "seen" counting records per key, read in Init (which must see restored
// state), with the running count written to output.
func e2eCounter(b *stream.Builder, input, output string) {
	stream.AddKeyValueStore(b, "seen", serde.String, serde.Int64, stream.WithInMemoryStore(), stream.WithCachingEnabled())
	src := stream.From(b, input, serde.String, serde.String)
	var seen state.KeyValueStore[string, int64]
	stream.ProcessValues(src, func() topology.Processor[string, string, string, int64] {
		return &topology.ProcessorFuncs[string, string, string, int64]{
			OnInit: func(ctx topology.ProcessorContext[string, int64]) error {
				st, err := ctx.Store("seen")
				if err != nil {
					return err
				}
				if seen, err = state.KeyValue[string, int64](st); err != nil {
					return err
				}
				_, _, err = seen.Get("k") // a read in Init caches what it sees
				return err
			},
			OnProcess: func(ctx topology.ProcessorContext[string, int64], rec topology.Record[string, string]) error {
				n, _, err := seen.Get(rec.Key)
				if err != nil {
					return err
				}
				if err := seen.Put(rec.Key, n+1); err != nil {
					return err
				}
				return ctx.Forward(topology.Record[string, int64]{Key: rec.Key, Value: n + 1, Timestamp: rec.Timestamp})
			},
		}
	}, stream.WithStores("seen")).To(output, serde.String, serde.Int64)
}

// TestAppStateRestoredBeforeInit: processors are initialized after their
// stores are restored, so what Init reads (and caches) is the restored
// state.
func TestAppStateRestoredBeforeInit(t *testing.T) {
	e := newE2E(t, time.Minute)
	e.topic("in", 1)
	e.topic("out", 1)
	const appID = "counter-init"
	run := func() {
		b := stream.NewBuilder()
		e2eCounter(b, "in", "out")
		cfg, _ := e.config(appID)
		app, err := stream.NewApp(b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		r := e.start(app)
		e.e2eWaitCommitted(appID, []string{"in"}, r)
		if err := r.stop(t); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		e.produce(&kgo.Record{Topic: "in", Key: []byte("k"), Value: []byte("x")})
	}
	run()
	e.produce(&kgo.Record{Topic: "in", Key: []byte("k"), Value: []byte("x")})
	run()
	if got := e.e2eFinalCounts("out")["k"]; got != 4 {
		t.Fatalf("count after a restart = %d, want 4", got)
	}
}

// TestAppStateChangelogRefusedIsFatal: a changelog record Kafka refuses
// fails the app even when the production error handler says continue,
// because dropping it would lose state at the next restore.
func TestAppStateChangelogRefusedIsFatal(t *testing.T) {
	e := newE2E(t, time.Minute)
	e.topic("in", 1)
	e.topic("out", 1)
	const appID = "refused"
	if err := e.c.CreateTopic(e.ctx, appID+"-blobs-changelog", 1, map[string]*string{"cleanup.policy": ptr("compact"), "max.message.bytes": ptr("300")}); err != nil {
		t.Fatal(err)
	}
	b := stream.NewBuilder()
	stream.AddKeyValueStore(b, "blobs", serde.String, serde.Bytes)
	src := stream.From(b, "in", serde.String, serde.Bytes)
	stream.ProcessValues(src, func() topology.Processor[string, []byte, string, []byte] {
		return &topology.ProcessorFuncs[string, []byte, string, []byte]{
			OnProcess: func(ctx topology.ProcessorContext[string, []byte], rec topology.Record[string, []byte]) error {
				st, err := ctx.Store("blobs")
				if err != nil {
					return err
				}
				kv, err := state.KeyValue[string, []byte](st)
				if err != nil {
					return err
				}
				return kv.Put(rec.Key, rec.Value)
			},
		}
	}, stream.WithStores("blobs")).To("out", serde.String, serde.Bytes)
	cfg, _ := e.config(appID)
	cfg.ProductionErrorHandler = stream.LogAndContinue
	cfg.ClientOpts = append(cfg.ClientOpts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 1000)
	for i := range blob {
		blob[i] = byte(i * 7919 % 251)
	}
	e.produce(&kgo.Record{Topic: "in", Key: []byte("big"), Value: blob})
	err = e.start(app).wait(t, 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), appID+"-blobs-changelog") {
		t.Fatalf("Run = %v, want a failure producing to the changelog", err)
	}
	if got := e.committed(appID, "in")[0]; got != 0 {
		t.Errorf("committed offset %d past the lost changelog record", got)
	}
}

// startsRecorder is a state.RestoreListener that records where each
// restoration of a partition started.
type startsRecorder struct {
	mu     sync.Mutex
	starts map[int32][]int64
}

func (r *startsRecorder) OnRestoreStart(_ string, p int32, _ string, start, _ int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.starts == nil {
		r.starts = map[int32][]int64{}
	}
	r.starts[p] = append(r.starts[p], start)
}

func (r *startsRecorder) OnBatchRestored(string, int32, string, int64, int64) {}

func (r *startsRecorder) OnRestoreEnd(string, int32, string, int64) {}

func (r *startsRecorder) get() map[int32][]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.starts)
}

// TestAppStateCleanup: an instance deletes the local state of a task it
// has not owned for StateCleanupDelay, so when the task comes back it is
// restored from the start of its changelog; counts stay exact.
func TestAppStateCleanup(t *testing.T) {
	e := newE2E(t, time.Minute)
	e.topic("keyed", 2)
	e.topic("key-counts", 2)
	const appID = "cleanup"
	truth := map[string]int64{}
	produce := func(from, n int) {
		var recs []*kgo.Record
		for i := from; i < from+n; i++ {
			k := fmt.Sprintf("k%d", i%20)
			truth[k]++
			recs = append(recs, &kgo.Record{Topic: "keyed", Key: []byte(k), Value: []byte("x")})
		}
		e.produce(recs...)
	}
	newApp := func(delay time.Duration) (*stream.App, *e2eLog, *startsRecorder) {
		b := stream.NewBuilder()
		grouped := stream.From(b, "keyed", serde.String, serde.String).GroupByKey(serde.String, serde.String)
		grouped.Count(stream.Materialized("counts")).ToStream().To("key-counts", serde.String, serde.Int64)
		cfg, logs := e.config(appID)
		cfg.StateCleanupDelay = delay
		rec := &startsRecorder{}
		cfg.RestoreListener = rec
		app, err := stream.NewApp(b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return app, logs, rec
	}
	appA, logsA, startsA := newApp(200 * time.Millisecond)
	appB, _, startsB := newApp(0)
	produce(0, 200)
	a := e.start(appA)
	e.e2eWaitCommitted(appID, []string{"keyed"}, a)
	b := e.start(appB)
	e.waitFor("B to take over a task", func() (bool, error) { return len(startsB.get()) > 0, nil }, a, b)
	var moved int32
	for p := range startsB.get() {
		moved = p
	}
	e.waitFor(fmt.Sprintf("A to delete the state of task 0_%d", moved), func() (bool, error) {
		return strings.Contains(logsA.String(), fmt.Sprintf("task=0_%d unowned_for=", moved)), nil
	}, a, b)
	produce(200, 100)
	e.e2eWaitCommitted(appID, []string{"keyed"}, a, b)
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	e.waitFor("A to restore the moved task", func() (bool, error) { return len(startsA.get()[moved]) > 0, nil }, a)
	if got := startsA.get()[moved]; got[len(got)-1] != 0 {
		t.Errorf("A restored partition %d from offset %d, want 0 (its local state was deleted)", moved, got[len(got)-1])
	}
	produce(300, 100)
	e.e2eWaitCommitted(appID, []string{"keyed"}, a)
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	if got := e.e2eFinalCounts("key-counts"); !maps.Equal(got, truth) {
		t.Fatalf("counts:\n got %v\nwant %v", got, truth)
	}
}

// TestAppStateFlushFailureAtShutdown: a cache flush that fails at a commit
// (a panic downstream, LogAndFail) fails the app, even when the app is
// being stopped at that moment: the shutdown's final commit must not
// commit the input whose change was lost.
func TestAppStateFlushFailureAtShutdown(t *testing.T) {
	e := newE2E(t, time.Minute)
	e.topic("keyed", 1)
	e.topic("key-counts", 1)
	const appID = "flush-fail"
	var run atomic.Pointer[e2eRun]
	b := stream.NewBuilder()
	grouped := stream.From(b, "keyed", serde.String, serde.String).GroupByKey(serde.String, serde.String)
	grouped.Count(stream.Materialized("counts")).ToStream().
		Peek(func(k string, _ int64) {
			if k == "bad" {
				run.Load().cancel() // stop the app while its commit fails
				panic("bad key")
			}
		}).To("key-counts", serde.String, serde.Int64)
	cfg, _ := e.config(appID)
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.produce(&kgo.Record{Topic: "keyed", Key: []byte("good"), Value: []byte("x")})
	run.Store(e.start(app))
	e.e2eWaitCommitted(appID, []string{"keyed"}, run.Load())
	e.produce(&kgo.Record{Topic: "keyed", Key: []byte("bad"), Value: []byte("x")})
	if err := run.Load().wait(t, 30*time.Second); err == nil || !strings.Contains(err.Error(), "bad key") {
		t.Fatalf("Run = %v, want the flush failure", err)
	}
	if got := e.committed(appID, "keyed")[0]; got != 1 {
		t.Errorf("committed offset %d, want 1: the failed change's input must not be committed", got)
	}
}

// TestAppStateEvictionFailureHandledOnce: an error downstream of a cache
// eviction inside a Put is handed to the processing error handler once;
// when it says fail, the task fails without asking again.
func TestAppStateEvictionFailureHandledOnce(t *testing.T) {
	e := newE2E(t, time.Minute)
	e.topic("keyed", 1)
	e.topic("key-counts", 1)
	const appID = "evict-fail"
	b := stream.NewBuilder()
	grouped := stream.From(b, "keyed", serde.String, serde.String).GroupByKey(serde.String, serde.String)
	grouped.Count(stream.Materialized("counts")).ToStream().
		Peek(func(k string, _ int64) {
			if k == "a" {
				panic("evicted a")
			}
		}).To("key-counts", serde.String, serde.Int64)
	cfg, _ := e.config(appID)
	cfg.CacheMaxBytes = 1 // every entry is evicted by the write that adds it
	var calls atomic.Int32
	cfg.ProcessingErrorHandler = func(topology.ErrorContext, error) topology.HandlerResponse {
		calls.Add(1)
		return topology.Fail
	}
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.produce(&kgo.Record{Topic: "keyed", Key: []byte("a"), Value: []byte("x")})
	if err := e.start(app).wait(t, 30*time.Second); err == nil || !strings.Contains(err.Error(), "evicted a") {
		t.Fatalf("Run = %v, want the eviction failure", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
}
