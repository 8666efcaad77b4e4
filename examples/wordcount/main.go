// Command wordcount counts words: input values are lines of text, and the
// output topic gets, for every word (lower-cased), its running count as an
// 8-byte big-endian int64 (Java's Serdes.Long(), kcat -s value=q). The
// counts live in a Pebble store backed by the changelog topic
// "<app-id>-counts-changelog", so they survive restarts and move with
// their task.
//
// With no flags it runs a demo on an embedded Kafka broker and prints the
// final counts. With -brokers it runs against that cluster until
// SIGINT/SIGTERM; the input and output topics must exist.
package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/runnel-dev/runnel/devbroker"
	"github.com/runnel-dev/runnel/examples/internal/cli"
	"github.com/runnel-dev/runnel/examples/internal/demo"
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
	f := cli.Parse("wordcount", "text-lines", "word-counts")
	if err := run(f); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(f cli.Flags) error {
	b := stream.NewBuilder()
	Topology(b, f.Input, f.Output)
	cfg := stream.Config{
		AppID:          f.AppID,
		Brokers:        f.Brokers,
		StateDir:       f.StateDir,
		Guarantee:      f.Guarantee,
		CommitInterval: f.CommitInterval,
		ClientOpts:     f.Client.Opts(),
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if len(cfg.Brokers) == 0 {
		// No cluster given: a demo on an embedded broker, with the topics
		// created and the demo lines in the input.
		broker, err := devbroker.Start(devbroker.Config{Topics: map[string]int32{f.Input: f.Partitions, f.Output: f.Partitions}})
		if err != nil {
			return err
		}
		defer broker.Close()
		cfg.Brokers = broker.Brokers()
		return demo.Run(ctx, broker, b, cfg, demo.Data{
			Input: f.Input, Output: f.Output,
			Records: []*kgo.Record{
				{Value: []byte("all streams lead to kafka")},
				{Value: []byte("hello kafka streams")},
				{Value: []byte("join kafka summit")},
			},
			Print: printFinalCounts,
		})
	}

	// A real cluster: the topics must exist; a missing one fails Run at
	// once with stream.ErrTopicMissing. Run returns nil after a clean
	// shutdown on SIGINT/SIGTERM.
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		return err
	}
	return app.Run(ctx)
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
