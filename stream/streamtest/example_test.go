package streamtest_test

import (
	"fmt"
	"strings"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/streamtest"
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
