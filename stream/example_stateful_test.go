package stream_test

import (
	"fmt"
	"strings"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/streamtest"
	"github.com/runnel-dev/runnel/topology"
)

// ExampleCount counts words. The record cache collapses the updates of a
// word until it is flushed (the test driver flushes after every Pipe), so
// "kafka" is counted twice but emitted once.
func ExampleCount() {
	b := stream.NewBuilder()
	lines := stream.From(b, "lines", serde.String, serde.String)
	words := stream.FlatMapValues(lines, strings.Fields)
	byWord := stream.GroupBy(words, func(_, word string) string { return word }, serde.String, serde.String)
	byWord.Count(stream.Materialized("counts")).ToStream().To("word-counts", serde.String, serde.Int64)
	topo, _ := b.Build()

	d, _ := streamtest.New(topo, streamtest.Config{})
	defer d.Close()
	_ = streamtest.InputTopic(d, "lines", serde.String, serde.String).Pipe("", "kafka streams kafka")
	counts, _ := streamtest.OutputTopic(d, "word-counts", serde.String, serde.Int64).ReadAll()
	for _, c := range counts {
		fmt.Println(c.Key, c.Value)
	}
	// Output:
	// kafka 2
	// streams 1
}

// ExampleTableGroupBy counts users per region from a table of users'
// regions: a user who moves is subtracted from the old region.
func ExampleTableGroupBy() {
	b := stream.NewBuilder()
	users := stream.Table(b, "user-regions", serde.String, serde.String, stream.Materialized("users"))
	byRegion := stream.TableGroupBy(users, func(user, region string) (string, string) { return region, user }, serde.String, serde.String)
	byRegion.Count(stream.Materialized("region-counts")).ToStream().To("region-counts", serde.String, serde.Int64)
	topo, _ := b.Build()

	d, _ := streamtest.New(topo, streamtest.Config{})
	defer d.Close()
	in := streamtest.InputTopic(d, "user-regions", serde.String, serde.String)
	_ = in.Pipe("alice", "eu")
	_ = in.Pipe("alice", "us")
	counts, _ := streamtest.OutputTopic(d, "region-counts", serde.String, serde.Int64).ReadAll()
	for _, c := range counts {
		fmt.Println(c.Key, c.Value)
	}
	// Output:
	// eu 1
	// eu 0
	// us 1
}

// ExampleAddKeyValueStore gives a Processor API processor a store: it
// remembers the last value of every key and forwards the previous one.
func ExampleAddKeyValueStore() {
	b := stream.NewBuilder()
	stream.AddKeyValueStore(b, "last", serde.String, serde.String)
	events := stream.From(b, "events", serde.String, serde.String)
	stream.ProcessValues(events, func() topology.Processor[string, string, string, string] {
		var last state.KeyValueStore[string, string]
		return &topology.ProcessorFuncs[string, string, string, string]{
			OnInit: func(ctx topology.ProcessorContext[string, string]) error {
				st, err := ctx.Store("last")
				if err != nil {
					return err
				}
				last, err = state.KeyValue[string, string](st)
				return err
			},
			OnProcess: func(ctx topology.ProcessorContext[string, string], rec topology.Record[string, string]) error {
				prev, _, err := last.Get(rec.Key)
				if err != nil {
					return err
				}
				if err := last.Put(rec.Key, rec.Value); err != nil {
					return err
				}
				return ctx.Forward(topology.Record[string, string]{Value: rec.Value + " after " + prev, Timestamp: rec.Timestamp})
			},
		}
	}, stream.WithStores("last")).To("changes", serde.String, serde.String)
	topo, _ := b.Build()

	d, _ := streamtest.New(topo, streamtest.Config{})
	defer d.Close()
	in := streamtest.InputTopic(d, "events", serde.String, serde.String)
	_ = in.Pipe("door", "open")
	_ = in.Pipe("door", "closed")
	out, _ := streamtest.OutputTopic(d, "changes", serde.String, serde.String).ReadAll()
	for _, r := range out {
		fmt.Printf("%s: %q\n", r.Key, r.Value)
	}
	// Output:
	// door: "open after "
	// door: "closed after open"
}
