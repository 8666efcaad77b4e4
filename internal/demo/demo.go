// Package demo holds what every program in examples/ shares: the common
// flags, the embedded-broker demo run and the run against a real cluster
// until SIGINT/SIGTERM. The examples keep only their topology and demo data.
package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/internal/kafkatest"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Flags are the examples' common flags (DESIGN.md, "Examples contract").
type Flags struct {
	Brokers    string
	AppID      string
	StateDir   string
	Input      string
	Output     string
	Guarantee  string
	Partitions int
}

// Parse registers the flags with defaults and parses the command line.
func Parse(defaults Flags) Flags {
	f := defaults
	flag.StringVar(&f.Brokers, "brokers", "", "bootstrap servers host:port[,...]; empty runs a demo on an embedded broker")
	flag.StringVar(&f.AppID, "app-id", f.AppID, "application id (consumer group, internal topic prefix)")
	flag.StringVar(&f.StateDir, "state-dir", "", "state directory (default: a temporary directory)")
	flag.StringVar(&f.Input, "input", f.Input, "input topic")
	flag.StringVar(&f.Output, "output", f.Output, "output topic")
	flag.StringVar(&f.Guarantee, "guarantee", "at_least_once", "processing guarantee: at_least_once or exactly_once")
	flag.IntVar(&f.Partitions, "partitions", 3, "partitions of the topics this program creates")
	flag.Parse()
	return f
}

// Example is one program of examples/.
type Example struct {
	Flags Flags
	// Build adds the topology, reading Flags.Input and writing Flags.Output.
	Build func(b *stream.Builder, input, output string)
	// Input is the demo input produced to Flags.Input on the embedded broker.
	Input []*kgo.Record
	// Print prints the demo's output records; nil prints each record's key
	// and value as strings.
	Print func(out []*kgo.Record)
}

// Main runs the example and exits: 0 on success, 1 with the error on stderr.
func Main(ex Example) {
	if err := run(ex); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(ex Example) error {
	f := ex.Flags
	guarantee := stream.AtLeastOnce
	switch f.Guarantee {
	case "at_least_once":
	case "exactly_once":
		guarantee = stream.ExactlyOnce
	default:
		return fmt.Errorf("-guarantee: want at_least_once or exactly_once, got %q", f.Guarantee)
	}
	if f.StateDir == "" {
		dir, err := os.MkdirTemp("", "runnel-example-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		f.StateDir = dir
	}
	b := stream.NewBuilder()
	ex.Build(b, f.Input, f.Output)
	cfg := stream.Config{AppID: f.AppID, StateDir: f.StateDir, Guarantee: guarantee,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}

	if f.Brokers != "" {
		cfg.Brokers = strings.Split(f.Brokers, ",")
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := ensureTopics(ctx, cfg.Brokers, int32(f.Partitions), f.Input, f.Output); err != nil {
			return err
		}
		app, err := stream.NewApp(b, cfg)
		if err != nil {
			return err
		}
		return app.Run(ctx)
	}
	return runDemo(ex, f, b, cfg)
}

// runDemo starts the embedded broker, produces the demo input, runs the app
// until it has committed all input, prints the output and stops.
func runDemo(ex Example, f Flags, b *stream.Builder, cfg stream.Config) error {
	cluster, err := kafkatest.Start()
	if err != nil {
		return err
	}
	defer cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, t := range []string{f.Input, f.Output} {
		if err := cluster.CreateTopic(ctx, t, int32(f.Partitions), nil); err != nil {
			return err
		}
	}
	for _, r := range ex.Input {
		r.Topic = f.Input
	}
	if err := cluster.Produce(ctx, ex.Input...); err != nil {
		return err
	}
	cfg.Brokers = cluster.Brokers()
	cfg.CommitInterval = 100 * time.Millisecond
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("%s\n", app.Topology().Describe())
	runCtx, stopApp := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	// Done once every record of the input, then of each repartition topic
	// (filled by the input's processing), is committed.
	topics := []string{f.Input}
	g := graph.Of(app.Topology())
	for _, it := range g.InternalTopics() {
		if it.Kind == graph.Repartition {
			topics = append(topics, g.TopicName(f.AppID, it.Name))
		}
	}
	var waitErr error
	for _, topic := range topics {
		if waitErr = waitCommitted(ctx, cluster, f.AppID, topic, done); waitErr != nil {
			break
		}
	}
	stopApp()
	if err := <-done; err != nil {
		return errors.Join(waitErr, err)
	}
	if waitErr != nil {
		return waitErr
	}
	out, err := cluster.ReadAll(ctx, f.Output)
	if err != nil {
		return err
	}
	if ex.Print == nil {
		ex.Print = printKeyValues
	}
	ex.Print(out)
	return nil
}

// waitCommitted waits until group has committed every record of topic
// present when it is called: the offset one past each partition's last
// data record (under exactly-once a transaction marker follows it, which
// committed offsets never pass). It fails if the app stops first.
func waitCommitted(ctx context.Context, cluster *kafkatest.Cluster, group, topic string, done chan error) error {
	recs, err := cluster.ReadAll(ctx, topic)
	if err != nil {
		return err
	}
	ends := map[int32]int64{}
	for _, r := range recs {
		ends[r.Partition] = r.Offset + 1
	}
	return kafkatest.WaitFor(ctx, func() (bool, error) {
		select {
		case err := <-done:
			done <- err
			return false, fmt.Errorf("app stopped early: %v", err)
		default:
		}
		offsets, err := cluster.CommittedOffsets(ctx, group, topic)
		if err != nil {
			return false, err
		}
		for p, end := range ends {
			if offsets[p] < end {
				return false, nil
			}
		}
		return true, nil
	})
}

func printKeyValues(out []*kgo.Record) {
	fmt.Printf("%d output records:\n", len(out))
	for _, r := range out {
		fmt.Printf("  %s\t%s\n", r.Key, r.Value)
	}
}

// ensureTopics creates the topics that do not exist yet.
func ensureTopics(ctx context.Context, brokers []string, partitions int32, topics ...string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, partitions, -1, nil, topics...)
	if err != nil {
		return err
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %q: %w", r.Topic, r.Err)
		}
	}
	return nil
}
