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

// The end-to-end benchmarks' default sizes make a run last several
// seconds, so that the 1s commit interval commits several times in it.
var pipeRecords = flag.Int("pipe.records", 5_000_000, "records per iteration of BenchmarkPipeEndToEnd")

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
// From(Bytes, Bytes).To(...) pipe. Its sub-benchmarks are the e2eModes:
// at-least-once and exactly-once at commit intervals of 100ms and 1s. In
// every iteration both run against the same broker and the same input
// topic, each writing a fresh output topic; which goes first alternates.
//
// Each phase is timed from client (or App.Run) start, so both include
// joining the group, until the input is processed and committed: for the
// baseline, until its one offset commit after the last Flush returns; for
// Runnel, until the group's committed offsets cover the input (checked
// every 5 ms). Under exactly-once that commit is the transaction's, which
// makes the output visible to read_committed consumers. Reported:
//
//   - raw-records/s and records/s (Runnel), and ratio = Runnel / raw.
//     Runnel's rate is taken at its last commit before the one covering
//     the input, when it made one: it commits every interval, so the
//     final commit comes up to an interval after the last record, a wait
//     that at 1s would swamp runs of a few seconds and hide the cost of
//     exactly-once;
//   - raw-allocs/record and allocs/record: process-wide heap allocations
//     per record during each phase, which include the in-process broker's,
//     so only their difference is Runnel's own cost.
//
// ns/op is Runnel's time per iteration (all records, until committed). Run
// it with
//
//	go test ./stream -run '^$' -bench PipeEndToEnd -benchtime 2x [-pipe.records N]
func BenchmarkPipeEndToEnd(b *testing.B) {
	n := *pipeRecords
	for _, m := range e2eModes {
		b.Run(m.String(), func(b *testing.B) {
			runEndToEnd(b, n, "pipe", endToEnd{
				produce: func(ctx context.Context, c *kafkatest.Cluster, in string) error { return produceInput(ctx, c, in, n) },
				raw: func(ctx context.Context, c *kafkatest.Cluster, in, out string, done func()) error {
					return rawPipe(ctx, c.Brokers(), "pipe-raw-"+in, in, out, n, done)
				},
				runnel: func(ctx context.Context, c *kafkatest.Cluster, in, out string, p *phase) error {
					return runnelPipe(ctx, c, m, b.TempDir(), "pipe-runnel-"+in, in, out, p)
				},
			})
		})
	}
}

// e2eMode is how Runnel runs in an end-to-end benchmark: its processing
// guarantee and commit interval.
type e2eMode struct {
	guarantee stream.Guarantee
	commit    time.Duration
}

// e2eModes are the sub-benchmarks of the end-to-end benchmarks, at-least-
// once next to exactly-once at each commit interval, so that the two run
// one after the other.
var e2eModes = []e2eMode{
	{stream.AtLeastOnce, 100 * time.Millisecond},
	{stream.ExactlyOnce, 100 * time.Millisecond},
	{stream.AtLeastOnce, time.Second},
	{stream.ExactlyOnce, time.Second},
}

// String returns the sub-benchmark name, e.g. "eos-100ms".
func (m e2eMode) String() string {
	g := "alos"
	if m.guarantee == stream.ExactlyOnce {
		g = "eos"
	}
	return g + "-" + m.commit.String()
}

// endToEnd is what an end-to-end benchmark runs in each round: it
// produces the input to in, and runs the raw baseline and Runnel, each
// writing its own output topic and ending its phase when done.
type endToEnd struct {
	produce func(ctx context.Context, c *kafkatest.Cluster, in string) error
	raw     func(ctx context.Context, c *kafkatest.Cluster, in, out string, done func()) error
	runnel  func(ctx context.Context, c *kafkatest.Cluster, in, out string, p *phase) error
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
			return raw.measure(n, func(p *phase) error { return e.raw(ctx, c, in, rawOut, p.done) })
		}
		runRunnel := func() error {
			return runnel.measure(n, func(p *phase) error { return e.runnel(ctx, c, in, runnelOut, p) })
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
	// rateRecords in rateElapsed is the rate: all records in all of
	// elapsed, or the part a phase's last commit before its end covered
	// (see phase.committed).
	rateRecords int64
	rateElapsed time.Duration
}

// phase is one measured run of n records. It ends when the run calls
// done, so shutting down afterwards is not counted.
type phase struct {
	n             int
	start, end    time.Time
	before, after goruntime.MemStats
	// partial is how many records the last commit seen before the end
	// covered, and partialAt when it was seen.
	partial   int64
	partialAt time.Time
}

// done ends the phase.
func (p *phase) done() {
	p.end = time.Now()
	goruntime.ReadMemStats(&p.after)
}

// committed tells the phase that records of its n are committed. A commit
// that covers some but not all of them becomes the phase's rate: the work
// went on all along until it.
func (p *phase) committed(records int64) {
	if records > p.partial && records < int64(p.n) {
		p.partial, p.partialAt = records, time.Now()
	}
}

// measure runs one phase of n records.
func (s *phaseStats) measure(n int, run func(*phase) error) error {
	p := &phase{n: n}
	goruntime.GC()
	goruntime.ReadMemStats(&p.before)
	p.start = time.Now()
	if err := run(p); err != nil {
		return err
	}
	if p.end.IsZero() {
		return errors.New("phase returned without finishing")
	}
	s.records += n
	s.elapsed += p.end.Sub(p.start)
	s.mallocs += p.after.Mallocs - p.before.Mallocs
	if p.partial > 0 {
		s.rateRecords += p.partial
		s.rateElapsed += p.partialAt.Sub(p.start)
	} else {
		s.rateRecords += int64(n)
		s.rateElapsed += p.end.Sub(p.start)
	}
	return nil
}

func (s *phaseStats) rate() float64 { return float64(s.rateRecords) / s.rateElapsed.Seconds() }

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
// at-least-once copy (rawLoop producing each record as it is). It is timed
// until its offset commit returns.
func rawPipe(ctx context.Context, brokers []string, group, in, out string, n int, done func()) error {
	return rawLoop(ctx, brokers, group, in, out, n, func(r *kgo.Record) *kgo.Record {
		return &kgo.Record{Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}
	}, nil, done)
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

// runnelPipe runs the Runnel pipe in mode m until its committed offsets
// cover the input.
func runnelPipe(ctx context.Context, c *kafkatest.Cluster, m e2eMode, stateDir, appID, in, out string, p *phase) error {
	b := stream.NewBuilder()
	stream.From(b, in, serde.Bytes, serde.Bytes).To(out, serde.Bytes, serde.Bytes)
	return runCommitted(ctx, c, b, stream.Config{
		AppID: appID, Brokers: c.Brokers(), StateDir: stateDir,
		Guarantee: m.guarantee, CommitInterval: m.commit,
	}, in, p)
}

// runCommitted runs the app of b with cfg (logging discarded) until the
// group's committed offsets cover the input topic in, telling p of every
// commit, then ends p and shuts the app down. The input is produced
// without transactions, so its end offsets are its record counts; topics
// the app writes under exactly-once also hold transaction markers.
func runCommitted(ctx context.Context, c *kafkatest.Cluster, b *stream.Builder, cfg stream.Config, in string, p *phase) error {
	ctx, cancel := context.WithTimeout(ctx, pipeTimeout)
	defer cancel()
	cfg.Logger = slog.New(slog.DiscardHandler)
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		return err
	}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
	if err != nil {
		return err
	}
	defer admCl.Close()
	ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, in)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return err
	}
	return runUntil(ctx, app, func() (bool, error) {
		offs, err := c.CommittedOffsets(ctx, cfg.AppID, in)
		if err != nil {
			return false, err
		}
		var sum int64
		done := true
		ends.Each(func(o kadm.ListedOffset) {
			sum += min(offs[o.Partition], o.Offset)
			done = done && offs[o.Partition] >= o.Offset
		})
		p.committed(sum)
		return done, nil
	}, p.done)
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
