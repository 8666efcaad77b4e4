package stream_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/streamtest"
	"github.com/runnel-dev/runnel/topology"
)

func TestProcessForwardSetsKeyTimestampHeaders(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	processed := stream.Process(src, supply(topology.ProcessorFuncs[string, string, int64, string]{
		OnProcess: func(ctx topology.ProcessorContext[int64, string], rec topology.Record[string, string]) error {
			hdrs := append(slices.Clone(rec.Headers), topology.Header{Key: "added", Value: []byte("yes")})
			for i := range 2 {
				out := topology.Record[int64, string]{Key: int64(len(rec.Key) + i), Value: rec.Value, Timestamp: rec.Timestamp + 10, Headers: hdrs}
				if err := ctx.Forward(out); err != nil {
					return err
				}
			}
			return nil
		},
	}))
	stream.MapValues(processed, strings.ToUpper).To("out", serde.Int64, serde.String)
	d := drive(t, b)
	in := topology.Record[string, string]{Key: "abc", Value: "v", Timestamp: 100, Headers: []topology.Header{{Key: "orig", Value: []byte("1")}}}
	if err := strIn(d, "in").PipeRecord(in); err != nil {
		t.Fatal(err)
	}
	recs, err := streamtest.OutputTopic(d, "out", serde.Int64, serde.String).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("got %d records, want 2", len(recs))
	}
	for i, r := range recs {
		if r.Key != int64(3+i) || r.Value != "V" || r.Timestamp != 110 {
			t.Errorf("record %d = %+v, want key %d, value V, timestamp 110", i, r, 3+i)
		}
		if len(r.Headers) != 2 || r.Headers[0].Key != "orig" || r.Headers[1].Key != "added" || string(r.Headers[1].Value) != "yes" {
			t.Errorf("record %d headers = %v, want orig and added", i, r.Headers)
		}
	}
}

func TestProcessForwardTo(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	routed := stream.Process(src, supply(topology.ProcessorFuncs[string, string, string, string]{
		OnProcess: func(ctx topology.ProcessorContext[string, string], rec topology.Record[string, string]) error {
			return ctx.ForwardTo(rec.Key, rec)
		},
	}), stream.Named("router"))
	routed.Peek(func(string, string) {}, stream.Named("left")).To("left-out", serde.String, serde.String)
	routed.Peek(func(string, string) {}, stream.Named("right")).To("right-out", serde.String, serde.String)
	d := drive(t, b)
	in := strIn(d, "in")
	pipeKVs(t, in, skv("left", "1"), skv("right", "2"), skv("left", "3"))
	expectKVs(t, strOut(d, "left-out"), skv("left", "1"), skv("left", "3"))
	expectKVs(t, strOut(d, "right-out"), skv("right", "2"))

	err := in.Pipe("middle", "4")
	if !errors.Is(err, topology.ErrUnknownChild) {
		t.Fatalf("ForwardTo an unknown child: Pipe = %v, want ErrUnknownChild", err)
	}
	var pe *topology.ProcessingError
	if !errors.As(err, &pe) || pe.Node != "router" || !strings.Contains(err.Error(), `"middle"`) {
		t.Fatalf("error = %v, want a ProcessingError of node router naming the child", err)
	}
}

func TestProcessContext(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	type seen struct {
		md         topology.RecordMetadata
		streamTime int64
	}
	var got []seen
	var initStreamTime int64 = 99
	var initMDOK = true
	var appID string
	var task topology.TaskID
	stream.Process(src, supply(topology.ProcessorFuncs[string, string, string, string]{
		OnInit: func(ctx topology.ProcessorContext[string, string]) error {
			initStreamTime = ctx.StreamTime()
			_, initMDOK = ctx.RecordMetadata()
			appID, task = ctx.AppID(), ctx.TaskID()
			return nil
		},
		OnProcess: func(ctx topology.ProcessorContext[string, string], rec topology.Record[string, string]) error {
			md, ok := ctx.RecordMetadata()
			if !ok {
				t.Error("RecordMetadata not available in Process")
			}
			got = append(got, seen{md, ctx.StreamTime()})
			ctx.Commit() // must not panic
			return nil
		},
	}))
	d := drive(t, b, streamtest.Config{AppID: "ctx-app"})
	if initStreamTime != -1 || initMDOK {
		t.Errorf("in Init: StreamTime = %d, RecordMetadata ok = %v; want -1, false", initStreamTime, initMDOK)
	}
	if appID != "ctx-app" || task != (topology.TaskID{}) {
		t.Errorf("AppID, TaskID = %q, %v; want ctx-app, 0_0", appID, task)
	}
	in := strIn(d, "in")
	for _, ts := range []int64{100, 50, 300} {
		if err := in.PipeAt("k", "v", time.UnixMilli(ts)); err != nil {
			t.Fatal(err)
		}
	}
	want := []seen{
		{topology.RecordMetadata{Topic: "in", Partition: 0, Offset: 0}, 100},
		{topology.RecordMetadata{Topic: "in", Partition: 0, Offset: 1}, 100}, // out of order: stream time stays
		{topology.RecordMetadata{Topic: "in", Partition: 0, Offset: 2}, 300},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("processor saw %v, want %v", got, want)
	}
}

func TestStreamTimePunctuation(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	var fired []int64
	stream.Process(src, supply(topology.ProcessorFuncs[string, string, string, string]{
		OnInit: func(ctx topology.ProcessorContext[string, string]) error {
			_, err := ctx.Schedule(10*time.Millisecond, topology.StreamTime, func(ts int64) error {
				fired = append(fired, ts)
				if _, ok := ctx.RecordMetadata(); ok {
					t.Error("RecordMetadata ok inside a punctuator")
				}
				return ctx.Forward(topology.Record[string, string]{Key: "punct", Value: "", Timestamp: ts})
			})
			return err
		},
		OnProcess: func(ctx topology.ProcessorContext[string, string], rec topology.Record[string, string]) error {
			return ctx.Forward(rec)
		},
	})).To("out", serde.String, serde.String)
	d := drive(t, b)
	in := strIn(d, "in")
	out := strOut(d, "out")
	// The wall clock does not drive stream-time punctuation.
	if err := d.AdvanceWallClock(time.Hour); err != nil {
		t.Fatal(err)
	}
	step := func(ts int64, wantFired []int64, wantOut ...kv) {
		t.Helper()
		if err := in.PipeAt("k", "v", time.UnixMilli(ts)); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(fired, wantFired) {
			t.Fatalf("after a record at %d: fired at %v, want %v", ts, fired, wantFired)
		}
		expectKVs(t, out, wantOut...)
	}
	// As in Kafka Streams, stream-time punctuation is aligned to 0 and
	// fires with the first record.
	step(5, []int64{5}, skv("k", "v"), skv("punct", "")) // record first, then the punctuation
	step(12, []int64{5, 12}, skv("k", "v"), skv("punct", ""))
	step(15, []int64{5, 12}, skv("k", "v"))
	step(3, []int64{5, 12}, skv("k", "v")) // late record: stream time stays at 15
	step(41, []int64{5, 12, 41}, skv("k", "v"), skv("punct", ""))
	step(49, []int64{5, 12, 41}, skv("k", "v")) // next one is due at 50: the grid of 0 + k*10
	step(50, []int64{5, 12, 41, 50}, skv("k", "v"), skv("punct", ""))
}

func TestWallClockPunctuationAndCancel(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	var fired []int64
	var cancel topology.Cancellable
	stream.Process(src, supply(topology.ProcessorFuncs[string, string, string, string]{
		OnInit: func(ctx topology.ProcessorContext[string, string]) error {
			var err error
			cancel, err = ctx.Schedule(time.Minute, topology.WallClockTime, func(ts int64) error {
				fired = append(fired, ts)
				return nil
			})
			return err
		},
		OnProcess: func(ctx topology.ProcessorContext[string, string], rec topology.Record[string, string]) error {
			if rec.Value == "cancel" {
				cancel.Cancel()
				cancel.Cancel() // idempotent
			}
			return nil
		},
	}))
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	d := drive(t, b, streamtest.Config{StartTime: start})
	in := strIn(d, "in")
	// Records, whatever their timestamps, do not drive wall-clock punctuation.
	if err := in.PipeAt("k", "v", start.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if len(fired) != 0 {
		t.Fatalf("fired at %v without the wall clock moving", fired)
	}
	if err := d.AdvanceWallClock(2*time.Minute + 30*time.Second); err != nil {
		t.Fatal(err)
	}
	m := start.UnixMilli()
	if want := []int64{m + 60_000, m + 120_000}; !slices.Equal(fired, want) {
		t.Fatalf("fired at %v, want %v", fired, want)
	}
	pipeKVs(t, in, skv("k", "cancel"))
	if err := d.AdvanceWallClock(time.Hour); err != nil {
		t.Fatal(err)
	}
	if len(fired) != 2 {
		t.Fatalf("fired %d times after Cancel, want no more than the 2 before", len(fired))
	}
}

func TestScheduleRejectsBadArguments(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	var errShort, errNil error
	stream.Process(src, supply(topology.ProcessorFuncs[string, string, string, string]{
		OnInit: func(ctx topology.ProcessorContext[string, string]) error {
			_, errShort = ctx.Schedule(time.Microsecond, topology.WallClockTime, func(int64) error { return nil })
			_, errNil = ctx.Schedule(time.Second, topology.WallClockTime, nil)
			return nil
		},
	}))
	drive(t, b)
	if errShort == nil || errNil == nil {
		t.Fatalf("Schedule(1µs) = %v, Schedule(nil) = %v; want errors", errShort, errNil)
	}
}

func TestProcessValuesKeepsKey(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	stream.ProcessValues(src, supply(topology.ProcessorFuncs[string, string, string, int64]{
		OnProcess: func(ctx topology.ProcessorContext[string, int64], rec topology.Record[string, string]) error {
			return ctx.Forward(topology.Record[string, int64]{Key: "changed", Value: int64(len(rec.Value)), Timestamp: rec.Timestamp})
		},
	})).To("out", serde.String, serde.Int64)
	d := drive(t, b)
	pipeKVs(t, strIn(d, "in"), skv("orig", "four"))
	expectKVs(t, streamtest.OutputTopic(d, "out", serde.String, serde.Int64), stream.KV("orig", int64(4)))
}

func TestProcessValuesCannotForwardFromPunctuator(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	stream.ProcessValues(src, supply(topology.ProcessorFuncs[string, string, string, string]{
		OnInit: func(ctx topology.ProcessorContext[string, string]) error {
			_, err := ctx.Schedule(time.Second, topology.WallClockTime, func(ts int64) error {
				return ctx.Forward(topology.Record[string, string]{Key: "k", Value: "v", Timestamp: ts})
			})
			return err
		},
	}), stream.Named("values")).To("out", serde.String, serde.String)
	d := drive(t, b)
	err := d.AdvanceWallClock(time.Second)
	var pe *topology.ProcessingError
	if !errors.As(err, &pe) || pe.Node != "values" || pe.Valid {
		t.Fatalf("AdvanceWallClock = %v, want a punctuation ProcessingError of node values", err)
	}
	if !strOut(d, "out").IsEmpty() {
		t.Fatal("ProcessValues forwarded from a punctuator")
	}
}

func TestProcessErrorNamesNode(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	errBad := errors.New("bad record")
	stream.Process(src, supply(topology.ProcessorFuncs[string, string, string, string]{
		OnProcess: func(ctx topology.ProcessorContext[string, string], rec topology.Record[string, string]) error {
			if rec.Value == "bad" {
				return errBad
			}
			return ctx.Forward(rec)
		},
	}), stream.Named("checker")).To("out", serde.String, serde.String)
	d := drive(t, b)
	in := strIn(d, "in")
	pipeKVs(t, in, skv("k", "ok"))
	err := in.Pipe("k", "bad")
	var pe *topology.ProcessingError
	if !errors.Is(err, errBad) || !errors.As(err, &pe) || pe.Node != "checker" || !pe.Valid || pe.Record.Offset != 1 {
		t.Fatalf("Pipe = %v, want a ProcessingError of node checker at offset 1 wrapping the processor's error", err)
	}
	expectKVs(t, strOut(d, "out"), skv("k", "ok"))
}

func TestProcessSupplierReturningNil(t *testing.T) {
	b := stream.NewBuilder()
	stream.Process(stream.From(b, "in", serde.String, serde.String), func() topology.Processor[string, string, string, string] { return nil }, stream.Named("nil-proc"))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := streamtest.New(topo, streamtest.Config{}); err == nil || !strings.Contains(err.Error(), "nil-proc") {
		t.Fatalf("New = %v, want an error naming the node", err)
	}
}

// sliceProc is a Processor with value receivers whose type is not
// comparable (a == b on two of them panics): a supplier returning it
// returns a copy every time, which is not a shared instance.
type sliceProc struct{ seen []string }

func (sliceProc) Init(topology.ProcessorContext[string, string]) error { return nil }
func (sliceProc) Process(topology.Record[string, string]) error        { return nil }
func (sliceProc) Close() error                                         { return nil }

// emptyProc has no state: Go may give every &emptyProc{} the same address.
type emptyProc struct{}

func (*emptyProc) Init(topology.ProcessorContext[string, string]) error { return nil }
func (*emptyProc) Process(topology.Record[string, string]) error        { return nil }
func (*emptyProc) Close() error                                         { return nil }

// mapProc is a Processor of a reference type other than a pointer.
type mapProc map[string]int

func (mapProc) Init(topology.ProcessorContext[string, string]) error { return nil }
func (m mapProc) Process(rec topology.Record[string, string]) error  { m[rec.Key]++; return nil }
func (mapProc) Close() error                                         { return nil }

func TestProcessSupplierSameInstance(t *testing.T) {
	type proc = topology.Processor[string, string, string, string]
	shared := &topology.ProcessorFuncs[string, string, string, string]{}
	sharedMap := mapProc{}
	const msg = `processor supplier returned the same instance twice: it must return a new Processor on every call`
	for _, tc := range []struct {
		name     string
		values   bool // ProcessValues instead of Process
		supplier func() proc
		want     string // "" for no error
	}{
		{"pointer", false, func() proc { return shared }, msg},
		{"pointer-values", true, func() proc { return shared }, msg},
		{"map", false, func() proc { return sharedMap }, msg},
		{"new-pointer", false, func() proc { return &topology.ProcessorFuncs[string, string, string, string]{} }, ""},
		{"non-comparable-value", false, func() proc { return sliceProc{seen: []string{"x"}} }, ""},
		{"zero-size-pointer", false, func() proc { return &emptyProc{} }, ""},
		{"panics", false, func() proc { panic("no database yet") }, "processor supplier panicked when called at build time: no database yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := stream.NewBuilder()
			src := stream.From(b, "in", serde.String, serde.String)
			if tc.values {
				stream.ProcessValues(src, tc.supplier, stream.Named("the-proc")).To("out", serde.String, serde.String)
			} else {
				stream.Process(src, tc.supplier, stream.Named("the-proc")).To("out", serde.String, serde.String)
			}
			if tc.want == "" {
				if _, err := b.Build(); err != nil {
					t.Fatalf("Build: %v", err)
				}
				return
			}
			err := buildErr(t, b)
			expectNodeError(t, err, "the-proc", tc.want)
			if !strings.Contains(err.Error(), `node "the-proc": `+tc.want) {
				t.Errorf("Build error %q does not name the node", err)
			}
			if _, err := stream.NewApp(b, stream.Config{AppID: "a", Brokers: []string{"localhost:9092"}}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewApp = %v, want the same error", err)
			}
		})
	}
}
