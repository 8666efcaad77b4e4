package stream_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	goruntime "runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/kafkatest"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var pipeRecords = flag.Int("pipe.records", 200_000, "records per iteration of BenchmarkPipeEndToEnd")

const (
	pipePartitions = 3
	pipeValueSize  = 100
	// pipeTimeout bounds each measured phase, so a stuck run fails instead
	// of hanging the benchmark.
	pipeTimeout = 5 * time.Minute
)

// BenchmarkPipeEndToEnd copies -pipe.records records (100-byte values, over
// 3 partitions) from one topic to another on the embedded broker, once with
// a plain franz-go consume→produce loop and once with a Runnel
// From(Bytes, Bytes).To(...) pipe at at-least-once with default settings.
// Both run in every iteration against the same broker and the same input
// topic, each writing a fresh output topic; which goes first alternates.
//
// Each phase is timed from client (or App.Run) start, so both include
// joining the group, until all records are in the output topic: for the
// baseline, until Flush returns; for Runnel, until the output topic's end
// offsets sum to the record count (checked every 5 ms). Neither includes
// the final offset commit. Reported:
//
//   - raw-records/s and records/s (Runnel), and ratio = Runnel / raw;
//   - raw-allocs/record and allocs/record: process-wide heap allocations
//     per record during each phase, which include the in-process broker's,
//     so only their difference is Runnel's own cost.
//
// ns/op is Runnel's time per iteration (all records). Run it with
//
//	go test ./stream -run '^$' -bench PipeEndToEnd -benchtime 3x -count 3 [-pipe.records N]
func BenchmarkPipeEndToEnd(b *testing.B) {
	n := *pipeRecords
	runEndToEnd(b, n, "pipe", endToEnd{
		produce: func(ctx context.Context, c *kafkatest.Cluster, in string) error { return produceInput(ctx, c, in, n) },
		raw: func(ctx context.Context, c *kafkatest.Cluster, in, out string, done func()) error {
			return rawPipe(ctx, c.Brokers(), "pipe-raw-"+in, in, out, n, done)
		},
		runnel: func(ctx context.Context, c *kafkatest.Cluster, adm *kadm.Client, in, out string, done func()) error {
			return runnelPipe(ctx, adm, c.Brokers(), "pipe-runnel-"+in, in, out, n, done)
		},
	})
}

// endToEnd is what an end-to-end benchmark runs in each round: it
// produces the input to in, and runs the raw baseline and Runnel, each
// writing its own output topic and calling done when its phase is over.
type endToEnd struct {
	produce func(ctx context.Context, c *kafkatest.Cluster, in string) error
	raw     func(ctx context.Context, c *kafkatest.Cluster, in, out string, done func()) error
	runnel  func(ctx context.Context, c *kafkatest.Cluster, adm *kadm.Client, in, out string, done func()) error
	// extraTopics are topics a round leaves behind besides its input and
	// outputs (e.g. changelogs), deleted with them.
	extraTopics func(in string) []string
}

// runEndToEnd runs b.N rounds of n records on an embedded broker: each
// creates the topics "<name>-in-<i>", "<name>-raw-out-<i>" and
// "<name>-runnel-out-<i>", produces the input, measures both phases
// (alternating which goes first) and deletes the topics; then it reports
// ns/op (Runnel's), raw-records/s, records/s, ratio and both
// allocs/record.
func runEndToEnd(b *testing.B, n int, name string, e endToEnd) {
	c := kafkatest.StartT(b)
	admCl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
	if err != nil {
		b.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	ctx := context.Background()

	var raw, runnel phaseStats
	for i := 0; i < b.N; i++ {
		in := fmt.Sprintf("%s-in-%d", name, i)
		rawOut, runnelOut := fmt.Sprintf("%s-raw-out-%d", name, i), fmt.Sprintf("%s-runnel-out-%d", name, i)
		for _, t := range []string{in, rawOut, runnelOut} {
			if err := c.CreateTopic(ctx, t, pipePartitions, nil); err != nil {
				b.Fatal(err)
			}
		}
		if err := e.produce(ctx, c, in); err != nil {
			b.Fatal(err)
		}
		runRaw := func() error {
			return raw.measure(n, func(done func()) error { return e.raw(ctx, c, in, rawOut, done) })
		}
		runRunnel := func() error {
			return runnel.measure(n, func(done func()) error { return e.runnel(ctx, c, adm, in, runnelOut, done) })
		}
		first, second := runRaw, runRunnel
		if i%2 == 1 {
			first, second = runRunnel, runRaw
		}
		if err := first(); err != nil {
			b.Fatal(err)
		}
		if err := second(); err != nil {
			b.Fatal(err)
		}
		// kfake keeps topics in memory: free them before the next round.
		topics := []string{in, rawOut, runnelOut}
		if e.extraTopics != nil {
			topics = append(topics, e.extraTopics(in)...)
		}
		if _, err := adm.DeleteTopics(ctx, topics...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(runnel.elapsed.Nanoseconds())/float64(b.N), "ns/op")
	rawRate, runnelRate := raw.rate(), runnel.rate()
	b.ReportMetric(rawRate, "raw-records/s")
	b.ReportMetric(runnelRate, "records/s")
	b.ReportMetric(runnelRate/rawRate, "ratio")
	b.ReportMetric(raw.allocsPerRecord(), "raw-allocs/record")
	b.ReportMetric(runnel.allocsPerRecord(), "allocs/record")
}

// phaseStats accumulates the measurements of one side of the benchmark.
type phaseStats struct {
	records int
	elapsed time.Duration
	mallocs uint64
}

// measure runs one phase of n records. The phase calls done once its
// records are all in the output topic; that ends the measurement, so
// shutting down afterwards is not counted.
func (s *phaseStats) measure(n int, run func(done func()) error) error {
	goruntime.GC()
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	var end time.Time
	start := time.Now()
	err := run(func() {
		end = time.Now()
		goruntime.ReadMemStats(&after)
	})
	if err != nil {
		return err
	}
	if end.IsZero() {
		return errors.New("phase returned without finishing")
	}
	s.records += n
	s.elapsed += end.Sub(start)
	s.mallocs += after.Mallocs - before.Mallocs
	return nil
}

func (s *phaseStats) rate() float64 { return float64(s.records) / s.elapsed.Seconds() }

func (s *phaseStats) allocsPerRecord() float64 { return float64(s.mallocs) / float64(s.records) }

// produceInput writes n records with distinct 16-byte keys and 100-byte
// values, spread evenly over the topic's partitions.
func produceInput(ctx context.Context, c *kafkatest.Cluster, topic string, n int) error {
	const chunk = 10_000
	value := make([]byte, pipeValueSize)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	for start := 0; start < n; start += chunk {
		recs := make([]*kgo.Record, 0, min(chunk, n-start))
		for i := start; i < start+cap(recs); i++ {
			recs = append(recs, &kgo.Record{
				Topic: topic, Partition: int32(i % pipePartitions),
				Key: fmt.Appendf(nil, "key-%012d", i), Value: value,
			})
		}
		if err := c.ProduceToPartitions(ctx, recs...); err != nil {
			return err
		}
	}
	return nil
}

// rawPipe is the baseline: the loop a franz-go user would write for an
// at-least-once copy (rawLoop producing each record as it is). It returns
// once all n records are produced and acknowledged; the offset commit that
// follows is not timed.
func rawPipe(ctx context.Context, brokers []string, group, in, out string, n int, done func()) error {
	return rawLoop(ctx, brokers, group, in, out, n, func(r *kgo.Record) *kgo.Record {
		return &kgo.Record{Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}
	}, done, nil)
}

// rawLoop is the franz-go loop of the end-to-end baselines, with the
// client options Runnel's own client uses where they matter (a group
// consumer starting at the earliest offset, manual commits, default
// producer batching and linger): it consumes n records, produces what
// each one maps to, flushes, calls flushed, commits, and calls committed
// (either may be nil).
func rawLoop(ctx context.Context, brokers []string, group, in, out string, n int, fn func(*kgo.Record) *kgo.Record, flushed, committed func()) error {
	ctx, cancel := context.WithTimeout(ctx, pipeTimeout)
	defer cancel()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.DefaultProduceTopic(out),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	var produceErr atomic.Pointer[error]
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			produceErr.CompareAndSwap(nil, &err)
		}
	}
	for consumed := 0; consumed < n; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return fmt.Errorf("raw loop: polling after %d records: %w", consumed, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			cl.Produce(ctx, fn(r), promise)
			consumed++
		})
		cl.AllowRebalance()
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if p := produceErr.Load(); p != nil {
		return *p
	}
	if flushed != nil {
		flushed()
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		return err
	}
	if committed != nil {
		committed()
	}
	return nil
}

// runnelPipe runs the Runnel pipe until the output topic holds n records,
// then calls done and shuts the app down.
func runnelPipe(ctx context.Context, adm *kadm.Client, brokers []string, appID, in, out string, n int, finished func()) error {
	ctx, cancel := context.WithTimeout(ctx, pipeTimeout)
	defer cancel()
	b := stream.NewBuilder()
	stream.From(b, in, serde.Bytes, serde.Bytes).To(out, serde.Bytes, serde.Bytes)
	app, err := stream.NewApp(b, stream.Config{
		AppID: appID, Brokers: brokers,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	return runUntil(ctx, app, func() (bool, error) {
		ends, err := adm.ListEndOffsets(ctx, out)
		if err != nil {
			return false, err
		}
		var total int64
		ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
		return total >= int64(n), nil
	}, finished)
}

// runUntil runs app until cond holds (checked every few ms), calls
// finished, then stops the app and returns the errors of the wait and of
// Run. A Run that returns before cond holds fails the wait.
func runUntil(ctx context.Context, app *stream.App, cond func() (bool, error), finished func()) error {
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- app.Run(runCtx) }()
	waitErr := kafkatest.WaitFor(ctx, func() (bool, error) {
		select {
		case err := <-runErr:
			runErr <- err // for the final receive
			return false, fmt.Errorf("Run returned early: %v", err)
		default:
		}
		return cond()
	})
	if waitErr == nil {
		finished()
	}
	stop()
	return errors.Join(waitErr, <-runErr)
}
