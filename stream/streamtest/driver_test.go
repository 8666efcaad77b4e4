package streamtest_test

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/streamtest"
	"github.com/runnel-dev/runnel/topology"
)

func newDriver(t *testing.T, b *stream.Builder, cfg streamtest.Config) *streamtest.Driver {
	t.Helper()
	topo, err := b.Build()
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	d, err := streamtest.New(topo, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestMetadataOffsetsAndRecordTime(t *testing.T) {
	b := stream.NewBuilder()
	type seen struct {
		md topology.RecordMetadata
		ts int64
	}
	var got []seen
	src := stream.From(b, "in", serde.String, serde.String)
	stream.Process(src, func() topology.Processor[string, string, string, string] {
		return &topology.ProcessorFuncs[string, string, string, string]{OnProcess: func(ctx topology.ProcessorContext[string, string], rec topology.Record[string, string]) error {
			md, ok := ctx.RecordMetadata()
			if !ok {
				t.Error("RecordMetadata not ok while processing")
			}
			got = append(got, seen{md, rec.Timestamp})
			return ctx.Forward(rec)
		}}
	}).To("out", serde.String, serde.String)
	start := time.UnixMilli(1_000_000)
	d := newDriver(t, b, streamtest.Config{StartTime: start})
	in := streamtest.InputTopic(d, "in", serde.String, serde.String)

	if err := in.Pipe("a", "1"); err != nil {
		t.Fatal(err)
	}
	in.Advance(5 * time.Second)
	if err := in.Pipe("b", "2"); err != nil {
		t.Fatal(err)
	}
	if err := in.PipeAt("c", "3", time.UnixMilli(42)); err != nil {
		t.Fatal(err)
	}
	if err := in.Pipe("d", "4"); err != nil { // PipeAt did not move the input's time
		t.Fatal(err)
	}
	want := []seen{
		{topology.RecordMetadata{Topic: "in", Partition: 0, Offset: 0}, 1_000_000},
		{topology.RecordMetadata{Topic: "in", Partition: 0, Offset: 1}, 1_005_000},
		{topology.RecordMetadata{Topic: "in", Partition: 0, Offset: 2}, 42},
		{topology.RecordMetadata{Topic: "in", Partition: 0, Offset: 3}, 1_005_000},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("processor saw %v, want %v", got, want)
	}
	if !d.WallClock().Equal(start) {
		t.Errorf("WallClock = %v, want StartTime %v (piping must not move it)", d.WallClock(), start)
	}
}

func TestPipeUnknownTopic(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.String).To("out", serde.String, serde.String)
	d := newDriver(t, b, streamtest.Config{})
	err := streamtest.InputTopic(d, "nope", serde.String, serde.String).Pipe("k", "v")
	if err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("Pipe to unread topic: err = %v, want an error naming the topic", err)
	}
	// Output topics are not input topics.
	if err := streamtest.InputTopic(d, "out", serde.String, serde.String).Pipe("k", "v"); err == nil {
		t.Fatal("Pipe to the output topic succeeded")
	}
}

func TestOutputReading(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.Int64).To("out", serde.String, serde.Int64)
	d := newDriver(t, b, streamtest.Config{})
	in := streamtest.InputTopic(d, "in", serde.String, serde.Int64)
	out := streamtest.OutputTopic(d, "out", serde.String, serde.Int64)

	if !out.IsEmpty() {
		t.Fatal("IsEmpty = false before any Pipe")
	}
	if _, err := out.ReadRecord(); !errors.Is(err, streamtest.ErrNoRecord) {
		t.Fatalf("ReadRecord on empty topic: err = %v, want ErrNoRecord", err)
	}
	if _, err := out.ReadKeyValue(); !errors.Is(err, streamtest.ErrNoRecord) {
		t.Fatalf("ReadKeyValue on empty topic: err = %v, want ErrNoRecord", err)
	}
	if recs, err := out.ReadAll(); err != nil || len(recs) != 0 {
		t.Fatalf("ReadAll on empty topic = %v, %v; want none", recs, err)
	}
	for i := range int64(3) {
		if err := in.Pipe("k", i); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := out.ReadKeyValue()
	if err != nil || kv != stream.KV("k", int64(0)) {
		t.Fatalf("ReadKeyValue = %v, %v; want {k 0}", kv, err)
	}
	// A second Output of the same topic reads from the same queue.
	other := streamtest.OutputTopic(d, "out", serde.String, serde.Int64)
	recs, err := other.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Value != 1 || recs[1].Value != 2 {
		t.Fatalf("ReadAll = %v, want values 1, 2", recs)
	}
	if !out.IsEmpty() {
		t.Fatal("IsEmpty = false after ReadAll")
	}

	// A record that does not decode with the Output's serdes is an error.
	if err := in.Pipe("k", 7); err != nil {
		t.Fatal(err)
	}
	bad := streamtest.OutputTopic(d, "out", serde.String, serde.Int32)
	if _, err := bad.ReadRecord(); !errors.Is(err, serde.ErrSize) {
		t.Fatalf("ReadRecord with the wrong serde: err = %v, want serde.ErrSize", err)
	}
}

func TestCloseClosesProcessorsAndKeepsOutput(t *testing.T) {
	b := stream.NewBuilder()
	closed := 0
	src := stream.From(b, "in", serde.String, serde.String)
	stream.Process(src, func() topology.Processor[string, string, string, string] {
		return &topology.ProcessorFuncs[string, string, string, string]{
			OnProcess: func(ctx topology.ProcessorContext[string, string], rec topology.Record[string, string]) error {
				return ctx.Forward(rec)
			},
			OnClose: func() error { closed++; return nil },
		}
	}).To("out", serde.String, serde.String)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := streamtest.New(topo, streamtest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	in := streamtest.InputTopic(d, "in", serde.String, serde.String)
	if err := in.Pipe("k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if closed != 1 {
		t.Fatalf("processor closed %d times, want 1", closed)
	}
	if err := in.Pipe("k", "v"); !errors.Is(err, streamtest.ErrClosed) {
		t.Fatalf("Pipe after Close: err = %v, want ErrClosed", err)
	}
	if err := d.AdvanceWallClock(time.Second); !errors.Is(err, streamtest.ErrClosed) {
		t.Fatalf("AdvanceWallClock after Close: err = %v, want ErrClosed", err)
	}
	if kv, err := streamtest.OutputTopic(d, "out", serde.String, serde.String).ReadKeyValue(); err != nil || kv.Value != "v" {
		t.Fatalf("reading output after Close = %v, %v", kv, err)
	}
}

func TestNewFailsWhenInitFails(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	boom := errors.New("boom")
	stream.Process(src, func() topology.Processor[string, string, string, string] {
		return &topology.ProcessorFuncs[string, string, string, string]{OnInit: func(topology.ProcessorContext[string, string]) error { return boom }}
	}, stream.Named("bad-init"))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	_, err = streamtest.New(topo, streamtest.Config{})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "bad-init") {
		t.Fatalf("New = %v, want the Init error naming the node", err)
	}
	if _, err := streamtest.New(nil, streamtest.Config{}); err == nil {
		t.Fatal("New(nil) succeeded")
	}
	empty, err := stream.NewBuilder().Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := streamtest.New(empty, streamtest.Config{}); !errors.Is(err, topology.ErrNoSource) || !strings.Contains(err.Error(), "it has no source: read a topic with stream.From") {
		t.Fatalf("New(empty topology) = %v, want topology.ErrNoSource", err)
	}
}

func TestAdvanceWallClockFiresEveryDuePunctuation(t *testing.T) {
	b := stream.NewBuilder()
	var fired []int64
	var seenClock []time.Time
	src := stream.From(b, "in", serde.String, serde.String)
	stream.Process(src, func() topology.Processor[string, string, string, string] {
		return &topology.ProcessorFuncs[string, string, string, string]{OnInit: func(ctx topology.ProcessorContext[string, string]) error {
			_, err := ctx.Schedule(10*time.Second, topology.WallClockTime, func(ts int64) error {
				fired = append(fired, ts)
				seenClock = append(seenClock, ctx.WallClockTime())
				return ctx.Forward(topology.Record[string, string]{Key: "tick", Value: "", Timestamp: ts})
			})
			return err
		}}
	}).To("ticks", serde.String, serde.String)
	start := time.UnixMilli(5_000)
	d := newDriver(t, b, streamtest.Config{StartTime: start})
	ticks := streamtest.OutputTopic(d, "ticks", serde.String, serde.String)

	if err := d.AdvanceWallClock(9 * time.Second); err != nil {
		t.Fatal(err)
	}
	if len(fired) != 0 || !ticks.IsEmpty() {
		t.Fatalf("fired %v before the first interval passed", fired)
	}
	if err := d.AdvanceWallClock(51 * time.Second); err != nil { // to 65 s
		t.Fatal(err)
	}
	want := []int64{15_000, 25_000, 35_000, 45_000, 55_000, 65_000}
	if !slices.Equal(fired, want) {
		t.Fatalf("punctuator fired at %v, want %v", fired, want)
	}
	for i, c := range seenClock {
		if c.UnixMilli() != want[i] {
			t.Fatalf("WallClockTime inside punctuation %d = %v, want %d", i, c.UnixMilli(), want[i])
		}
	}
	if got := d.WallClock(); !got.Equal(time.UnixMilli(65_000)) {
		t.Fatalf("WallClock = %v, want 65s", got.UnixMilli())
	}
	recs, err := ticks.ReadAll()
	if err != nil || len(recs) != len(want) || recs[5].Timestamp != 65_000 {
		t.Fatalf("forwarded ticks = %v, %v", recs, err)
	}
	if err := d.AdvanceWallClock(-time.Second); err == nil {
		t.Fatal("AdvanceWallClock(-1s) succeeded")
	}
}

func TestFeedbackThroughUserTopic(t *testing.T) {
	// Two subtopologies connected by a user topic: the second must have
	// processed the record before Pipe returns.
	b := stream.NewBuilder()
	stream.MapValues(stream.From(b, "in", serde.String, serde.String), strings.ToUpper).To("mid", serde.String, serde.String)
	stream.MapValues(stream.From(b, "mid", serde.String, serde.String), func(v string) string { return v + "!" }).To("out", serde.String, serde.String)
	d := newDriver(t, b, streamtest.Config{})
	in := streamtest.InputTopic(d, "in", serde.String, serde.String)
	if err := in.Pipe("k", "hi"); err != nil {
		t.Fatal(err)
	}
	if kv, err := streamtest.OutputTopic(d, "out", serde.String, serde.String).ReadKeyValue(); err != nil || kv.Value != "HI!" {
		t.Fatalf("out = %v, %v; want HI!", kv, err)
	}
	if kv, err := streamtest.OutputTopic(d, "mid", serde.String, serde.String).ReadKeyValue(); err != nil || kv.Value != "HI" {
		t.Fatalf("mid = %v, %v; want HI", kv, err)
	}
}

func TestFailedRecordIsDroppedAndNotDeadLettered(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.String).
		Filter(func(_, v string) bool {
			if v == "bad" {
				panic("bad value")
			}
			return true
		}, stream.Named("picky")).
		To("out", serde.String, serde.String)
	d := newDriver(t, b, streamtest.Config{DeadLetterQueueTopic: "dlq"})
	in := streamtest.InputTopic(d, "in", serde.String, serde.String)
	out := streamtest.OutputTopic(d, "out", serde.String, serde.String)

	err := in.Pipe("k", "bad")
	var pe *topology.ProcessingError
	if !errors.As(err, &pe) || pe.Node != "picky" {
		t.Fatalf("Pipe(bad) = %v, want a ProcessingError of node picky", err)
	}
	if n := d.SkippedRecords("processing"); n != 0 {
		t.Fatalf("SkippedRecords(processing) = %d after a failed Pipe, want 0: a failed record is not a skipped one", n)
	}
	if err := in.Pipe("k", "good"); err != nil {
		t.Fatalf("Pipe after a failure: %v", err)
	}
	recs, err := out.ReadAll()
	if err != nil || len(recs) != 1 || recs[0].Value != "good" {
		t.Fatalf("out = %v, %v; want only the good record", recs, err)
	}
	if !streamtest.OutputTopic(d, "dlq", serde.Bytes, serde.Bytes).IsEmpty() {
		t.Fatal("a record the handler failed on was written to the dead-letter topic")
	}
}

func TestPatternSourceAndRaw(t *testing.T) {
	b := stream.NewBuilder()
	stream.FromPattern(b, regexp.MustCompile(`orders-\w+`), serde.Bytes, serde.String).To("out", serde.Bytes, serde.String)
	d := newDriver(t, b, streamtest.Config{})
	if err := streamtest.InputTopic(d, "orders-eu", serde.String, serde.String).Pipe("k", "eu"); err != nil {
		t.Fatal(err)
	}
	// PipeRaw keeps a null key null.
	if err := streamtest.InputTopic(d, "orders-us", serde.String, serde.String).PipeRaw(nil, []byte("us")); err != nil {
		t.Fatal(err)
	}
	if err := streamtest.InputTopic(d, "old-orders-eu", serde.String, serde.String).Pipe("k", "x"); err == nil {
		t.Fatal("a topic matching the pattern only in part was read")
	}
	recs, err := streamtest.OutputTopic(d, "out", serde.Bytes, serde.String).ReadAll()
	if err != nil || len(recs) != 2 || string(recs[0].Key) != "k" || recs[1].Key != nil || recs[1].Value != "us" {
		t.Fatalf("out = %v, %v", recs, err)
	}
}
