package stream_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/streamtest"
	"github.com/runnel-dev/runnel/topology"
)

// Regression tests for defects found in review of the state work.

// TestInitFailureClosesOnlyInitializedProcessors: when a processor's Init
// fails, the processors initialized before it are closed, and it and the
// ones after it are not (Kafka Streams never closes a processor it did not
// initialize).
func TestInitFailureClosesOnlyInitializedProcessors(t *testing.T) {
	var events []string
	proc := func(name string, fail bool) func() topology.Processor[string, string, string, string] {
		return func() topology.Processor[string, string, string, string] {
			return &topology.ProcessorFuncs[string, string, string, string]{
				OnInit: func(topology.ProcessorContext[string, string]) error {
					events = append(events, "init "+name)
					if fail {
						return errors.New("boom")
					}
					return nil
				},
				OnClose: func() error { events = append(events, "close "+name); return nil },
			}
		}
	}
	b := stream.NewBuilder()
	s := stream.From(b, "in", serde.String, serde.String)
	s = stream.Process(s, proc("a", false), stream.Named("a"))
	s = stream.Process(s, proc("b", true), stream.Named("b"))
	stream.Process(s, proc("c", false), stream.Named("c"))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := streamtest.New(topo, streamtest.Config{}); err == nil {
		t.Fatal("New succeeded although an Init failed")
	}
	want := []string{"init a", "init b", "close a"}
	if fmt.Sprint(events) != fmt.Sprint(want) {
		t.Errorf("events %v, want %v", events, want)
	}
}

// failOn2 is an Int64 serde that cannot serialize 2.
var failOn2 = serde.Func(
	func(topic string, v int64) ([]byte, error) {
		if v == 2 {
			return nil, errors.New("cannot encode 2")
		}
		return serde.Int64.Serialize(topic, v)
	},
	serde.Int64.Deserialize,
)

// TestUncachedStoreSerdeErrorIsSticky: a value the store's serde cannot
// encode fails the task even under LogAndContinue, cached or not.
func TestUncachedStoreSerdeErrorIsSticky(t *testing.T) {
	for _, cached := range []bool{true, false} {
		t.Run(fmt.Sprintf("cached=%v", cached), func(t *testing.T) {
			opts := []stream.MaterializedOption{stream.Materialized("agg")}
			if !cached {
				opts = append(opts, stream.WithCachingDisabled())
			}
			b := stream.NewBuilder()
			g := stream.From(b, "in", serde.String, serde.String).GroupByKey(serde.String, serde.String)
			stream.Aggregate(g, func() int64 { return 0 }, func(_, _ string, agg int64) int64 { return agg + 1 }, failOn2, opts...).
				ToStream().To("out", serde.String, serde.Int64)
			d := drive(t, b, streamtest.Config{ProcessingErrorHandler: stream.LogAndContinue})
			in := strIn(d, "in")
			pipeKVs(t, in, skv("a", "x"))
			if err := in.Pipe("a", "x"); err == nil {
				t.Fatal("Pipe succeeded although the store could not encode the aggregate")
			}
		})
	}
}

// TestForwardedTimestampReachesCachedStore: a processor forwarding a record
// with a new timestamp sets the record time its children's cached writes
// and changelog records take, as Kafka Streams' record context does.
func TestForwardedTimestampReachesCachedStore(t *testing.T) {
	b := stream.NewBuilder()
	shifted := stream.ProcessValues(stream.From(b, "in", serde.String, serde.String), supply(topology.ProcessorFuncs[string, string, string, string]{
		OnProcess: func(ctx topology.ProcessorContext[string, string], rec topology.Record[string, string]) error {
			rec.Timestamp += 1000
			return ctx.Forward(rec)
		},
	}))
	shifted.GroupByKey(serde.String, serde.String).Count(stream.Materialized("c")).
		ToStream().To("out", serde.String, serde.Int64)
	d := drive(t, b)
	if err := strIn(d, "in").PipeRecord(topology.Record[string, string]{Key: "a", Value: "x", Timestamp: 5}); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"out", "streamtest-c-changelog"} {
		rec, err := int64Out(d, topic).ReadRecord()
		if err != nil {
			t.Fatal(err)
		}
		if rec.Timestamp != 1005 {
			t.Errorf("%s: timestamp %d, want 1005", topic, rec.Timestamp)
		}
	}
}
