// Command linesplit splits each input line into words: every input record
// becomes one output record per word, with the input's key and the word as
// value.
//
// With no flags it runs a demo on an embedded Kafka broker and prints the
// output. With -brokers it runs against that cluster until SIGINT/SIGTERM;
// the input and output topics must exist.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/runnel-dev/runnel/devbroker"
	"github.com/runnel-dev/runnel/examples/internal/cli"
	"github.com/runnel-dev/runnel/examples/internal/demo"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Topology adds the line splitter to b.
func Topology(b *stream.Builder, input, output string) {
	lines := stream.From(b, input, serde.String, serde.String)
	words := stream.FlatMapValues(lines, strings.Fields, stream.Named("split-words"))
	words.To(output, serde.String, serde.String)
}

func main() {
	f := cli.Parse("linesplit", "lines", "words")
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
				{Key: []byte("doc-1"), Value: []byte("all streams lead to kafka")},
				{Key: []byte("doc-2"), Value: []byte("hello kafka streams")},
				{Key: []byte("doc-3"), Value: []byte("join kafka summit")},
			},
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
