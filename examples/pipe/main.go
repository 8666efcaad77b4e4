// Command pipe copies every record of the input topic to the output topic
// unchanged (key, value, timestamp and headers). With no flags it runs a
// demo on an embedded Kafka broker and prints the output; with -brokers it
// runs against that cluster until SIGINT/SIGTERM.
package main

import (
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	demo.Main(demo.Example{
		Flags: demo.Parse(demo.Flags{AppID: "pipe", Input: "pipe-input", Output: "pipe-output"}),
		Build: func(b *stream.Builder, input, output string) {
			stream.From(b, input, serde.Bytes, serde.Bytes).To(output, serde.Bytes, serde.Bytes)
		},
		Input: []*kgo.Record{
			{Key: []byte("k1"), Value: []byte("first")},
			{Key: []byte("k2"), Value: []byte("second")},
			{Key: []byte("k3"), Value: []byte("third")},
		},
	})
}
