package stream_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/streamtest"
	"github.com/runnel-dev/runnel/topology"
)

// ExampleBuilder_Build compiles a topology and describes it in the shape of
// Kafka Streams' TopologyDescription.
func ExampleBuilder_Build() {
	b := stream.NewBuilder()
	lines := stream.From(b, "lines", serde.String, serde.String)
	stream.FlatMapValues(lines, strings.Fields, stream.Named("split-words")).
		To("words", serde.String, serde.String)
	topo, err := b.Build()
	if err != nil {
		panic(err) // every wiring problem, each naming its node
	}
	fmt.Print(topo.Describe())
	// Output:
	// Topologies:
	//    Sub-topology: 0
	//     Source: KSTREAM-SOURCE-0000000000 (topics: [lines])
	//       --> split-words
	//     Processor: split-words (stores: [])
	//       --> KSTREAM-SINK-0000000002
	//       <-- KSTREAM-SOURCE-0000000000
	//     Sink: KSTREAM-SINK-0000000002 (topic: words)
	//       <-- split-words
}

// ExampleKStream_Split routes records to named branches; the first matching
// predicate wins.
func ExampleKStream_Split() {
	b := stream.NewBuilder()
	orders := stream.From(b, "orders", serde.String, serde.Int64)
	branches := orders.Split(stream.Named("size-")).
		Branch("large", func(_ string, amount int64) bool { return amount >= 1000 }).
		DefaultBranch("small")
	branches["size-large"].To("large-orders", serde.String, serde.Int64)
	branches["size-small"].To("small-orders", serde.String, serde.Int64)
	topo, _ := b.Build()

	d, _ := streamtest.New(topo, streamtest.Config{})
	defer d.Close()
	in := streamtest.InputTopic(d, "orders", serde.String, serde.Int64)
	_ = in.Pipe("a", 5000)
	_ = in.Pipe("b", 20)
	large, _ := streamtest.OutputTopic(d, "large-orders", serde.String, serde.Int64).ReadAll()
	small, _ := streamtest.OutputTopic(d, "small-orders", serde.String, serde.Int64).ReadAll()
	fmt.Println(len(large), large[0].Key, len(small), small[0].Key)
	// Output: 1 a 1 b
}

// ExampleProcess uses the Processor API: a processor that counts records
// and emits the count on a stream-time punctuation.
func ExampleProcess() {
	b := stream.NewBuilder()
	events := stream.From(b, "events", serde.String, serde.String)
	stream.Process(events, func() topology.Processor[string, string, string, int64] {
		var seen int64
		return &topology.ProcessorFuncs[string, string, string, int64]{
			OnInit: func(ctx topology.ProcessorContext[string, int64]) error {
				_, err := ctx.Schedule(time.Minute, topology.StreamTime, func(ts int64) error {
					return ctx.Forward(topology.Record[string, int64]{Key: "seen", Value: seen, Timestamp: ts})
				})
				return err
			},
			OnProcess: func(_ topology.ProcessorContext[string, int64], _ topology.Record[string, string]) error {
				seen++
				return nil
			},
		}
	}, stream.Named("counter")).To("counts", serde.String, serde.Int64)
	topo, _ := b.Build()

	d, _ := streamtest.New(topo, streamtest.Config{})
	defer d.Close()
	in := streamtest.InputTopic(d, "events", serde.String, serde.String)
	start := time.UnixMilli(0)
	for _, at := range []time.Duration{0, 10 * time.Second, 50 * time.Second, 61 * time.Second} {
		_ = in.PipeAt("k", "v", start.Add(at))
	}
	counts, _ := streamtest.OutputTopic(d, "counts", serde.String, serde.Int64).ReadAll()
	for _, c := range counts {
		fmt.Println(c.Timestamp, c.Key, c.Value)
	}
	// Output:
	// 0 seen 1
	// 61000 seen 4
}
