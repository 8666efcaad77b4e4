// Package demo runs an example's application on an embedded broker the
// example has started: it produces the demo input, runs the application
// until it has processed all of it, stops it and prints the output. This is
// the one part of the examples a user's own program does not need.
package demo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/runnel-dev/runnel/devbroker"
	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/internal/kafkatest"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Data is the demo data of an example.
type Data struct {
	// Input and Output are the topics the application reads and writes;
	// the caller creates them.
	Input, Output string
	// Records are produced to Input before the application starts.
	Records []*kgo.Record
	// Print prints the output records; nil prints each record's key and
	// value as strings.
	Print func(out []*kgo.Record)
}

// timeout bounds a whole demo run.
const timeout = 2 * time.Minute

// Run runs the application of b and cfg (whose Brokers are broker's) on d:
// it produces d.Records, prints the topology, runs the application until
// it has committed every input record (and every record of its
// repartition topics), stops it, and prints what it wrote to d.Output. An
// empty cfg.StateDir is a temporary directory, removed afterwards; a zero
// cfg.CommitInterval is 100ms, so the demo ends quickly.
func Run(ctx context.Context, broker *devbroker.Cluster, b *stream.Builder, cfg stream.Config, d Data) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if cfg.StateDir == "" {
		dir, err := os.MkdirTemp("", "runnel-example-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.StateDir = dir
	}
	cfg.CommitInterval = cmp.Or(cfg.CommitInterval, 100*time.Millisecond)

	cluster := &kafkatest.Cluster{Cluster: broker}
	for _, r := range d.Records {
		r.Topic = d.Input
	}
	if err := cluster.Produce(ctx, d.Records...); err != nil {
		return err
	}
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
	topics := []string{d.Input}
	g := graph.Of(app.Topology())
	for _, it := range g.InternalTopics() {
		if it.Kind == graph.Repartition {
			topics = append(topics, g.TopicName(cfg.AppID, it.Name))
		}
	}
	var waitErr error
	for _, topic := range topics {
		if waitErr = waitCommitted(ctx, cluster, cfg.AppID, topic, done); waitErr != nil {
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
	out, err := cluster.ReadAll(ctx, d.Output)
	if err != nil {
		return err
	}
	if d.Print == nil {
		d.Print = printKeyValues
	}
	d.Print(out)
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
