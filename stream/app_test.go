package stream_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kgo"
)

// e2eInput returns n records for topic spread over keys: record i has key
// "k<i%keys>", value "<key>:<seq>" where seq counts the key's records, a
// distinct timestamp and a header carrying i.
func e2eInput(topic string, n, keys int, base time.Time) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	seq := make([]int, keys)
	for i := range recs {
		k := i % keys
		key := fmt.Sprintf("k%02d", k)
		recs[i] = &kgo.Record{
			Topic:     topic,
			Key:       []byte(key),
			Value:     fmt.Appendf(nil, "%s:%06d", key, seq[k]),
			Timestamp: base.Add(time.Duration(i) * time.Millisecond),
			Headers:   []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}, {Key: "src", Value: []byte("e2e")}},
		}
		seq[k]++
	}
	return recs
}

// e2eSeq parses the sequence number of a value made by e2eInput.
func e2eSeq(t *testing.T, value []byte) (key string, seq int) {
	t.Helper()
	k, s, ok := strings.Cut(string(value), ":")
	n, err := strconv.Atoi(s)
	if !ok || err != nil {
		t.Fatalf("malformed output value %q", value)
	}
	return k, n
}

// TestAppPipeMultiPartition pipes thousands of keyed records through three
// partitions in a clean run: each appears exactly once, in per-key order,
// with its timestamp and headers; the offsets are committed to the end;
// and the state listener sees the full lifecycle.
func TestAppPipeMultiPartition(t *testing.T) {
	e := newE2E(t, 60*time.Second)
	const n, keys = 3000, 37
	e.topic("in", 3)
	e.topic("out", 3)
	input := e2eInput("in", n, keys, time.UnixMilli(1_700_000_000_000))
	e.produce(input...)
	ends := map[int32]int64{}
	for _, r := range input {
		ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
	}
	if len(ends) != 3 {
		t.Fatalf("input landed in partitions %v, want all 3", ends)
	}

	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.String).To("out", serde.String, serde.String)
	cfg, _ := e.config("pipe-e2e")
	var states e2eStates
	cfg.StateListener = states.listener
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if app.State() != stream.Created {
		t.Fatalf("State() before Run = %v, want CREATED", app.State())
	}
	run := e.start(app)
	e.waitFor("all input to be committed", func() (bool, error) {
		offs, err := e.c.CommittedOffsets(e.ctx, "pipe-e2e", "in")
		return err == nil && maps.Equal(offs, ends), err
	}, run)
	if app.State() != stream.Running {
		t.Errorf("State() while processing = %v, want RUNNING", app.State())
	}
	if got := e2eMetric(t, reg, "runnel_tasks", nil); got != 3 {
		t.Errorf("runnel_tasks = %v, want 3", got)
	}
	start := time.Now()
	if err := run.stop(t); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	t.Logf("shutdown took %v", time.Since(start))
	if app.State() != stream.NotRunning {
		t.Errorf("State() after Run = %v, want NOT_RUNNING", app.State())
	}
	wantStates := []string{"CREATED->REBALANCING", "REBALANCING->RUNNING", "RUNNING->PENDING_SHUTDOWN", "PENDING_SHUTDOWN->NOT_RUNNING"}
	if got := states.get(); !slices.Equal(got, wantStates) {
		t.Errorf("state transitions = %v, want %v", got, wantStates)
	}
	if err := app.Run(e.ctx); !errors.Is(err, stream.ErrAlreadyRun) {
		t.Errorf("second Run = %v, want ErrAlreadyRun", err)
	}
	if got := e.committed("pipe-e2e", "in"); !maps.Equal(got, ends) {
		t.Errorf("committed offsets after shutdown = %v, want the end offsets %v", got, ends)
	}
	if got := e2eMetric(t, reg, "runnel_records_processed_total", nil); got != n {
		t.Errorf("runnel_records_processed_total = %v, want %d", got, n)
	}

	out := e.readAll("out")
	if len(out) != n {
		t.Errorf("output has %d records, want exactly %d", len(out), n)
	}
	byValue := map[string]*kgo.Record{}
	for _, r := range input {
		byValue[string(r.Value)] = r
	}
	seen := map[string]bool{}
	lastSeq := map[string]int{}
	partOf := map[string]int32{}
	for _, r := range out {
		v := string(r.Value)
		in, ok := byValue[v]
		switch {
		case !ok:
			t.Errorf("unexpected output value %q", v)
			continue
		case seen[v]:
			t.Errorf("output value %q appears more than once", v)
			continue
		}
		seen[v] = true
		if string(r.Key) != string(in.Key) {
			t.Errorf("%s: key %q, want %q", v, r.Key, in.Key)
		}
		if !r.Timestamp.Equal(in.Timestamp) {
			t.Errorf("%s: timestamp %v, want %v", v, r.Timestamp.UnixMilli(), in.Timestamp.UnixMilli())
		}
		if !slices.EqualFunc(r.Headers, in.Headers, func(a, b kgo.RecordHeader) bool {
			return a.Key == b.Key && string(a.Value) == string(b.Value)
		}) {
			t.Errorf("%s: headers %v, want %v", v, r.Headers, in.Headers)
		}
		key, seq := e2eSeq(t, r.Value)
		if p, ok := partOf[key]; ok && p != r.Partition {
			t.Errorf("key %s is in output partitions %d and %d", key, p, r.Partition)
		}
		partOf[key] = r.Partition
		// Output is by partition then offset, and a key has one partition:
		// its sequence numbers must count up from 0 without gaps.
		if want := lastSeq[key]; seq != want {
			t.Errorf("key %s: output seq %d at offset %d, want %d (order or completeness broken)", key, seq, r.Offset, want)
		}
		lastSeq[key] = seq + 1
	}
	if len(seen) != n {
		t.Errorf("output has %d distinct input records, want %d", len(seen), n)
	}
}

// e2eProducer produces e2eInput-style records to topic in chunks from a
// background goroutine until stop is called or max records are written.
type e2eProducer struct {
	stopc chan struct{}
	done  chan struct{}
	recs  []*kgo.Record // the produced records, readable after done
	err   error
}

func (e *e2eEnv) produceInBackground(topic string, max, chunk, keys int) *e2eProducer {
	p := &e2eProducer{stopc: make(chan struct{}), done: make(chan struct{})}
	all := e2eInput(topic, max, keys, time.UnixMilli(1_700_000_000_000))
	go func() {
		defer close(p.done)
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.c.Brokers()...), kgo.ProducerLinger(0))
		if err != nil {
			p.err = err
			return
		}
		defer cl.Close()
		for i := 0; i < len(all); i += chunk {
			select {
			case <-p.stopc:
				return
			default:
			}
			batch := all[i:min(i+chunk, len(all))]
			if err := cl.ProduceSync(e.ctx, batch...).FirstErr(); err != nil {
				p.err = err
				return
			}
			p.recs = all[:i+len(batch)]
		}
	}()
	e.t.Cleanup(func() { p.stop() })
	return p
}

// stop stops producing and returns the records produced.
func (p *e2eProducer) stop() ([]*kgo.Record, error) {
	select {
	case <-p.stopc:
	default:
		close(p.stopc)
	}
	<-p.done
	return p.recs, p.err
}

// TestAppRebalanceTwoInstances runs two instances of one application: the
// second takes over part of the tasks while input keeps arriving, and
// gives them back when it stops. Nothing is lost, and per key the output
// keeps the input order (duplicates of a re-delivered suffix allowed).
func TestAppRebalanceTwoInstances(t *testing.T) {
	e := newE2E(t, 90*time.Second)
	e.topic("in", 3)
	e.topic("out", 3)
	const appID = "rebalance-e2e"
	newApp := func() (*stream.App, *prometheus.Registry) {
		b := stream.NewBuilder()
		stream.From(b, "in", serde.String, serde.String).To("out", serde.String, serde.String)
		cfg, _ := e.config(appID)
		reg := prometheus.NewRegistry()
		cfg.Registerer = reg
		app, err := stream.NewApp(b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return app, reg
	}
	tasks := func(reg *prometheus.Registry) float64 { return e2eMetric(t, reg, "runnel_tasks", nil) }
	processed := func(reg *prometheus.Registry) float64 {
		return e2eMetric(t, reg, "runnel_records_processed_total", nil)
	}

	appA, regA := newApp()
	runA := e.start(appA)
	prod := e.produceInBackground("in", 50_000, 20, 29)
	e.waitFor("instance A to own all 3 tasks and process input", func() (bool, error) {
		return tasks(regA) == 3 && processed(regA) > 0, nil
	}, runA)

	appB, regB := newApp()
	runB := e.start(appB)
	e.waitFor("the tasks to be shared by A and B, and B to process input", func() (bool, error) {
		a, b := tasks(regA), tasks(regB)
		return a >= 1 && b >= 1 && a+b == 3 && processed(regB) > 0, nil
	}, runA, runB)
	// Sticky assignment: A owned all three tasks, so it keeps two and B
	// takes only the surplus.
	if a, b := tasks(regA), tasks(regB); a != 2 || b != 1 {
		t.Errorf("after B joined: A has %v tasks, B has %v; want A to keep 2 (sticky) and B to take 1", a, b)
	}
	if got := appB.State(); got != stream.Running {
		t.Errorf("B state = %v, want RUNNING", got)
	}

	processedByB := processed(regB)
	if err := runB.stop(t); err != nil {
		t.Fatalf("B: Run = %v, want nil", err)
	}
	processedByA := processed(regA)
	e.waitFor("A to take all tasks back and process more input", func() (bool, error) {
		return tasks(regA) == 3 && processed(regA) > processedByA, nil
	}, runA)
	input, err := prod.stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("produced %d records; B processed %v", len(input), processedByB)

	ends := map[int32]int64{}
	for _, r := range input {
		ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
	}
	e.waitFor("A to commit all input", func() (bool, error) {
		offs, err := e.c.CommittedOffsets(e.ctx, appID, "in")
		return err == nil && maps.Equal(offs, ends), err
	}, runA)
	if err := runA.stop(t); err != nil {
		t.Fatalf("A: Run = %v, want nil", err)
	}

	out := e.readAll("out")
	firstSeen := map[string]int{} // value -> index in out
	for i, r := range out {
		if _, ok := firstSeen[string(r.Value)]; !ok {
			firstSeen[string(r.Value)] = i
		}
	}
	for _, r := range input {
		if _, ok := firstSeen[string(r.Value)]; !ok {
			t.Errorf("input %s is missing from the output", r.Value)
		}
	}
	// For each key, the first occurrences of its values must be in input
	// order: a re-delivered suffix may repeat values but not reorder them.
	last := map[string]int{}
	for i, r := range out {
		if firstSeen[string(r.Value)] != i {
			continue
		}
		key, seq := e2eSeq(t, r.Value)
		if want, ok := last[key]; (ok && seq != want+1) || (!ok && seq != 0) {
			t.Errorf("key %s: first occurrence of seq %d at output index %d follows seq %d", key, seq, i, last[key])
		}
		last[key] = seq
	}
	t.Logf("output: %d records, %d duplicates", len(out), len(out)-len(firstSeen))
}

// TestAppBlockedTaskBackpressure blocks one task in user code while its
// partition keeps receiving records, with a buffer limit of 10 records per
// partition: the other task's records still flow (the poll loop is not
// stuck behind the full task), and once the blocked task is released its
// records, which the runtime stopped fetching and fetched again (pause and
// resume), are all processed exactly once and in order.
func TestAppBlockedTaskBackpressure(t *testing.T) {
	skipShort(t)
	e := newE2E(t, 60*time.Second)
	e.topic("in", 2)
	e.topic("out", 2)
	const blockedN, freeN = 1000, 200
	produce := func(prefix string, partition int32, from, n int) {
		t.Helper()
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: "in", Partition: partition, Key: []byte(prefix), Value: fmt.Appendf(nil, "%s:%06d", prefix, from+i)}
		}
		// Small batches, so that one fetch holds few records.
		for i := 0; i < n; i += 20 {
			if err := e.c.ProduceToPartitions(e.ctx, recs[i:min(i+20, n)]...); err != nil {
				t.Fatal(err)
			}
		}
	}

	entered, release := make(chan struct{}), make(chan struct{})
	var enterOnce sync.Once
	var freeSeen atomic.Int64
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.String).
		Peek(func(k, _ string) {
			if k == "blocked" {
				enterOnce.Do(func() { close(entered) })
				<-release
			} else {
				freeSeen.Add(1)
			}
		}).
		WithPartitioner(func(_, k, _ string, _ int32) int32 {
			if k == "blocked" {
				return 0
			}
			return 1
		}).
		To("out", serde.String, serde.String)
	cfg, _ := e.config("backpressure-e2e")
	cfg.MaxBufferedRecordsPerPartition = 10
	// A commit waits for every task to reach a record boundary, which the
	// blocked task never does: commit only at shutdown.
	cfg.CommitInterval = time.Hour
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	produce("blocked", 0, 0, 100)
	run := e.start(app)
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	select {
	case <-entered:
	case <-e.ctx.Done():
		t.Fatal("the blocked task never started")
	}
	produce("blocked", 0, 100, blockedN-100)
	produce("free", 1, 0, freeN)
	e.waitFor("the free task to process its records while the other is blocked", func() (bool, error) {
		return freeSeen.Load() == freeN, nil
	}, run)
	close(release)
	released = true

	want := map[int32]int64{0: blockedN, 1: freeN}
	e.waitFor("all output", func() (bool, error) {
		recs, err := e.c.ReadAll(e.ctx, "out")
		return len(recs) >= blockedN+freeN, err
	}, run)
	if err := run.stop(t); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if got := e.committed("backpressure-e2e", "in"); !maps.Equal(got, want) {
		t.Errorf("committed offsets %v, want %v", got, want)
	}
	out := e.readAll("out")
	if len(out) != blockedN+freeN {
		t.Errorf("output has %d records, want exactly %d", len(out), blockedN+freeN)
	}
	next := map[string]int{}
	for _, r := range out {
		key, seq := e2eSeq(t, r.Value)
		if seq != next[key] {
			t.Fatalf("output of %s: seq %d at offset %d, want %d (lost, duplicated or reordered)", key, seq, r.Offset, next[key])
		}
		next[key]++
	}
}
