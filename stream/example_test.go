package stream_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/streamtest"
	"github.com/runnel-dev/runnel/topology"
)

// Example is the WordCount topology: it splits lines into words, groups them
// by word and counts them in the store "counts", whose changes go to the
// topic "word-counts". It runs here on the test driver, which commits, and
// so flushes the record cache, after every Pipe: a word counted twice in one
// line is emitted once.
func Example() {
	b := stream.NewBuilder()
	lines := stream.From(b, "text-lines", serde.String, serde.String)
	words := stream.FlatMapValues(lines, func(line string) []string { return strings.Fields(strings.ToLower(line)) })
	byWord := stream.GroupBy(words, func(_, word string) string { return word }, serde.String, serde.String)
	counts := byWord.Count(stream.Materialized("counts")) // KTable[string, int64]
	counts.ToStream().To("word-counts", serde.String, serde.Int64)
	topo, err := b.Build()
	if err != nil {
		panic(err)
	}

	d, err := streamtest.New(topo, streamtest.Config{})
	if err != nil {
		panic(err)
	}
	defer d.Close()
	in := streamtest.InputTopic(d, "text-lines", serde.String, serde.String)
	out := streamtest.OutputTopic(d, "word-counts", serde.String, serde.Int64)
	for _, line := range []string{"Kafka Streams for Go", "go go kafka"} {
		if err := in.Pipe("", line); err != nil {
			panic(err)
		}
		counts, err := out.ReadAll()
		if err != nil {
			panic(err)
		}
		var line []string
		for _, c := range counts {
			line = append(line, fmt.Sprintf("%s=%d", c.Key, c.Value))
		}
		fmt.Println(strings.Join(line, " "))
	}
	// Output:
	// kafka=1 streams=1 for=1 go=1
	// go=3 kafka=2
}

// Example_stateless chains stateless operators: two topics merged into one
// stream, empty records dropped, each record's comma-separated tags split
// into records of their own, normalized, and re-keyed by tag.
func Example_stateless() {
	b := stream.NewBuilder()
	web := stream.From(b, "web-posts", serde.String, serde.String)
	mobile := stream.From(b, "mobile-posts", serde.String, serde.String)
	posts := web.Merge(mobile).FilterNot(func(_, tags string) bool { return tags == "" })
	tags := stream.FlatMapValues(posts, func(tags string) []string { return strings.Split(tags, ",") })
	normalized := stream.MapValues(tags, func(tag string) string { return strings.ToLower(strings.TrimSpace(tag)) })
	byTag := stream.Map(normalized, func(user, tag string) (string, string) { return tag, user })
	byTag.To("tagged-by", serde.String, serde.String)
	topo, err := b.Build()
	if err != nil {
		panic(err)
	}

	d, err := streamtest.New(topo, streamtest.Config{})
	if err != nil {
		panic(err)
	}
	defer d.Close()
	_ = streamtest.InputTopic(d, "web-posts", serde.String, serde.String).Pipe("ann", "Go, Kafka")
	_ = streamtest.InputTopic(d, "mobile-posts", serde.String, serde.String).Pipe("bob", "")
	_ = streamtest.InputTopic(d, "mobile-posts", serde.String, serde.String).Pipe("cat", "Streams")
	out, _ := streamtest.OutputTopic(d, "tagged-by", serde.String, serde.String).ReadAll()
	for _, r := range out {
		fmt.Println(r.Key, r.Value)
	}
	// Output:
	// go ann
	// kafka ann
	// streams cat
}

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

// ExampleNewApp runs a topology against a Kafka cluster until SIGINT or
// SIGTERM: cancelling Run's context finishes the records in progress,
// commits and leaves the consumer group. (It needs a broker, so it is
// compiled but not run here.)
func ExampleNewApp() {
	b := stream.NewBuilder()
	stream.From(b, "orders", serde.String, serde.String).
		FilterNot(func(_, order string) bool { return order == "" }).
		To("valid-orders", serde.String, serde.String)

	app, err := stream.NewApp(b, stream.Config{
		AppID:     "order-filter",
		Brokers:   []string{"localhost:9092"},
		Guarantee: stream.ExactlyOnce,
		StateListener: func(old, new stream.State) {
			log.Printf("order-filter: %s -> %s", old, new)
		},
	})
	if err != nil {
		log.Fatal(err) // an invalid topology (naming the node) or Config (naming the field)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx); err != nil {
		log.Fatal(err) // a missing topic, or a record that failed under LogAndFail
	}
}
