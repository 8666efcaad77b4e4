// Command wordcount counts words: input values are lines of text, and the
// output topic gets, for every word (lower-cased), its running count as an
// 8-byte big-endian int64 (Java's Serdes.Long(), kcat -s value=q). The
// counts live in a Pebble store backed by the changelog topic
// "<app-id>-counts-changelog", so they survive restarts and move with
// their task. With no flags it runs a demo on an embedded Kafka broker
// and prints the final counts; with -brokers it runs against that cluster
// until SIGINT/SIGTERM.
package main

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Topology adds the word count to b.
func Topology(b *stream.Builder, input, output string) {
	lines := stream.From(b, input, serde.String, serde.String)
	words := stream.FlatMapValues(lines, func(line string) []string {
		return strings.Fields(strings.ToLower(line))
	}, stream.Named("split-words"))
	byWord := stream.GroupBy(words, func(_, word string) string { return word }, serde.String, serde.String)
	counts := byWord.Count(stream.Materialized("counts"))
	counts.ToStream().To(output, serde.String, serde.Int64)
}

func main() {
	demo.Main(demo.Example{
		Flags: demo.Parse(demo.Flags{AppID: "wordcount", Input: "text-lines", Output: "word-counts"}),
		Build: Topology,
		Input: []*kgo.Record{
			{Value: []byte("all streams lead to kafka")},
			{Value: []byte("hello kafka streams")},
			{Value: []byte("join kafka summit")},
		},
		Print: printFinalCounts,
	})
}

// printFinalCounts prints the last count of every word.
func printFinalCounts(out []*kgo.Record) {
	final := map[string]int64{}
	for _, r := range out {
		if len(r.Value) == 8 {
			final[string(r.Key)] = int64(binary.BigEndian.Uint64(r.Value))
		}
	}
	words := make([]string, 0, len(final))
	for w := range final {
		words = append(words, w)
	}
	slices.Sort(words)
	fmt.Printf("final counts of %d words (from %d output records):\n", len(words), len(out))
	for _, w := range words {
		fmt.Printf("  %s\t%d\n", w, final[w])
	}
}
