package runtime_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/kafkatest"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestSlowTaskDoesNotStallOthers checks the poll loop's backpressure
// (Runtime.waitForRoom): a task far over its buffer limit is paused after a
// while, so another task's records still flow, and it is resumed once it
// has worked its buffer down, so every record is processed in the end.
func TestSlowTaskDoesNotStallOthers(t *testing.T) {
	const slowN, fastN = 1000, 100
	c := kafkatest.StartT(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, topic := range []string{"bp-in", "bp-out"} {
		if err := c.CreateTopic(ctx, topic, 2, nil); err != nil {
			t.Fatal(err)
		}
	}
	var slowDone, fastDone atomic.Int64
	b := stream.NewBuilder()
	stream.From(b, "bp-in", serde.String, serde.String).
		Peek(func(k, _ string) {
			if strings.HasPrefix(k, "slow") {
				time.Sleep(time.Millisecond) // a slow operator, not synchronization
				slowDone.Add(1)
			} else {
				fastDone.Add(1)
			}
		}).
		To("bp-out", serde.String, serde.String)
	app, err := stream.NewApp(b, stream.Config{
		AppID: "bp", Brokers: c.Brokers(), Logger: slog.New(slog.DiscardHandler),
		MaxBufferedRecordsPerPartition: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	produce := func(prefix string, partition int32, n int) {
		t.Helper()
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: "bp-in", Partition: partition, Key: fmt.Appendf(nil, "%s-%d", prefix, i), Value: []byte("v")}
		}
		if err := c.ProduceToPartitions(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	produce("slow", 0, slowN)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()

	wait := func(what string, cond func() bool) {
		t.Helper()
		if err := kafkatest.WaitFor(ctx, func() (bool, error) { return cond(), nil }); err != nil {
			t.Fatalf("%s: %v (slow %d/%d, fast %d/%d)", what, err, slowDone.Load(), slowN, fastDone.Load(), fastN)
		}
	}
	wait("slow task started", func() bool { return slowDone.Load() > 0 })
	produce("fast", 1, fastN)
	wait("fast task done", func() bool { return fastDone.Load() == fastN })
	// The slow task needs at least a second; the fast records must not
	// have waited for most of it.
	if n := slowDone.Load(); n > slowN/2 {
		t.Errorf("the fast task finished only after the slow one processed %d of %d records", n, slowN)
	}
	wait("slow task done", func() bool { return slowDone.Load() == slowN })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
