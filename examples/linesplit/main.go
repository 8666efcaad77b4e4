// Command linesplit splits each input line into words: every input record
// becomes one output record per word, with the input's key and the word as
// value. With no flags it runs a demo on an embedded Kafka broker and
// prints the output; with -brokers it runs against that cluster until
// SIGINT/SIGTERM.
package main

import (
	"strings"

	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	demo.Main(demo.Example{
		Flags: demo.Parse(demo.Flags{AppID: "linesplit", Input: "lines", Output: "words"}),
		Build: func(b *stream.Builder, input, output string) {
			lines := stream.From(b, input, serde.String, serde.String)
			words := stream.FlatMapValues(lines, strings.Fields, stream.Named("split-words"))
			words.To(output, serde.String, serde.String)
		},
		Input: []*kgo.Record{
			{Key: []byte("doc-1"), Value: []byte("all streams lead to kafka")},
			{Key: []byte("doc-2"), Value: []byte("hello kafka streams")},
			{Key: []byte("doc-3"), Value: []byte("join kafka summit")},
		},
	})
}
