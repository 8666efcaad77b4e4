package streamtest_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/streamtest"
	"github.com/runnel-dev/runnel/topology"
)

// Example tests a topology that splits lines into upper-cased words.
func Example() {
	b := stream.NewBuilder()
	lines := stream.From(b, "lines", serde.String, serde.String)
	words := stream.FlatMapValues(lines, strings.Fields)
	stream.MapValues(words, strings.ToUpper).To("words", serde.String, serde.String)
	topo, err := b.Build()
	if err != nil {
		panic(err)
	}

	d, err := streamtest.New(topo, streamtest.Config{})
	if err != nil {
		panic(err)
	}
	defer d.Close()
	in := streamtest.InputTopic(d, "lines", serde.String, serde.String)
	out := streamtest.OutputTopic(d, "words", serde.String, serde.String)

	if err := in.Pipe("greeting", "hello streaming world"); err != nil {
		panic(err)
	}
	recs, err := out.ReadAll()
	if err != nil {
		panic(err)
	}
	for _, r := range recs {
		fmt.Println(r.Key, r.Value)
	}
	fmt.Println(out.IsEmpty())
	// Output:
	// greeting HELLO
	// greeting STREAMING
	// greeting WORLD
	// true
}

// ExampleKeyValueStore seeds a topology's store before piping and checks
// its contents afterwards, as a test of an aggregation would.
func ExampleKeyValueStore() {
	b := stream.NewBuilder()
	clicks := stream.From(b, "clicks", serde.String, serde.String)
	byPage := clicks.GroupByKey(serde.String, serde.String)
	byPage.Count(stream.Materialized("clicks-per-page"))
	topo, err := b.Build()
	if err != nil {
		panic(err)
	}

	d, err := streamtest.New(topo, streamtest.Config{})
	if err != nil {
		panic(err)
	}
	defer d.Close()
	counts, err := streamtest.KeyValueStore[string, int64](d, "clicks-per-page")
	if err != nil {
		panic(err)
	}
	if err := counts.Put("/home", 41); err != nil { // state from before the test
		panic(err)
	}
	in := streamtest.InputTopic(d, "clicks", serde.String, serde.String)
	_ = in.Pipe("/home", "ann")
	_ = in.Pipe("/docs", "bob")
	for page, n := range counts.All() {
		fmt.Println(page, n)
	}
	// Output:
	// /docs 1
	// /home 42
}

// ExampleInput_PipeRaw tests what happens to a record that cannot be
// decoded: under the default handler Pipe returns the
// *topology.DeserializationError; under stream.LogAndContinue the record
// is skipped and counted.
func ExampleInput_PipeRaw() {
	b := stream.NewBuilder()
	stream.From(b, "amounts", serde.String, serde.Int64).To("copied", serde.String, serde.Int64)
	topo, err := b.Build()
	if err != nil {
		panic(err)
	}

	for _, cfg := range []streamtest.Config{{}, {DeserializationErrorHandler: stream.LogAndContinue}} {
		d, err := streamtest.New(topo, cfg)
		if err != nil {
			panic(err)
		}
		in := streamtest.InputTopic(d, "amounts", serde.String, serde.Int64)
		err = in.PipeRaw([]byte("k"), []byte("not an int64"))
		var de *topology.DeserializationError
		fmt.Println(errors.As(err, &de), d.SkippedRecords("deserialization"))
		_ = d.Close()
	}
	// Output:
	// true 0
	// false 1
}
