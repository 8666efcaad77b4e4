package stream_test

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/kafkatest"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	countRecords = flag.Int("count.records", 3_000_000, "records per iteration of BenchmarkCountEndToEnd")
	countKeys    = flag.Int("count.keys", 100_000, "distinct keys of BenchmarkCountEndToEnd")
	countCache   = flag.Int64("count.cache", 0, "Runnel's Config.CacheMaxBytes in BenchmarkCountEndToEnd (0: default 10 MiB per task; -1: no cache)")
	restoreSize  = flag.Int("restore.records", 1_000_000, "changelog records of BenchmarkRestore")
)

// BenchmarkCountEndToEnd counts -count.records records with -count.keys
// distinct keys (spread over 3 partitions) on the embedded broker, once
// with a plain franz-go loop (consume, count in a Go map, produce every
// new count, flush, commit) and once with Runnel's
// GroupByKey().Count().ToStream().To(): Pebble store on disk, changelog
// and record cache (-count.cache, default 10 MiB per task). Its
// sub-benchmarks are the e2eModes: at-least-once and exactly-once at
// commit intervals of 100ms and 1s. Both run in every iteration against
// the same input; the order alternates.
//
// A phase is timed from client (or App.Run) start until all input is
// processed and committed: for the baseline, until its final commit
// returns; for Runnel, until the group's committed offsets cover the input
// (checked every 5 ms), which includes the state and changelog writes of
// the last commit. Reported as BenchmarkPipeEndToEnd (Runnel's rate at its
// last commit before the final one): raw-records/s, records/s, ratio, and
// process-wide allocations per record (including the in-process broker's).
//
//	go test ./stream -run '^$' -bench CountEndToEnd -benchtime 2x
func BenchmarkCountEndToEnd(b *testing.B) {
	n, keys := *countRecords, *countKeys
	for _, m := range e2eModes {
		b.Run(m.String(), func(b *testing.B) {
			runEndToEnd(b, n, "count", endToEnd{
				produce: func(ctx context.Context, c *kafkatest.Cluster, in string) error {
					return produceKeyed(ctx, c, in, n, keys)
				},
				raw: func(ctx context.Context, c *kafkatest.Cluster, in, out string, done func()) error {
					return rawCount(ctx, c.Brokers(), "count-raw-"+in, in, out, n, done)
				},
				runnel: func(ctx context.Context, c *kafkatest.Cluster, in, out string, p *phase) error {
					return runnelCount(ctx, c, m, b.TempDir(), "count-runnel-"+in, in, out, p)
				},
				extraTopics: func(in string) []string { return []string{"count-runnel-" + in + "-counts-changelog"} },
			})
		})
	}
}

// produceKeyed writes n 100-byte records whose keys cycle through keys
// distinct values, spread over the topic's partitions by key hash.
func produceKeyed(ctx context.Context, c *kafkatest.Cluster, topic string, n, keys int) error {
	const chunk = 10_000
	value := make([]byte, pipeValueSize)
	for start := 0; start < n; start += chunk {
		recs := make([]*kgo.Record, 0, min(chunk, n-start))
		for i := start; i < start+cap(recs); i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "key-%08d", i%keys), Value: value})
		}
		if err := c.Produce(ctx, recs...); err != nil {
			return err
		}
	}
	return nil
}

// rawCount is the baseline: rawLoop counting records per key in a Go
// map and producing each new count (8-byte big-endian). It keeps no
// durable state. It is timed until its offset commit returns.
func rawCount(ctx context.Context, brokers []string, group, in, out string, n int, done func()) error {
	counts := map[string]int64{}
	return rawLoop(ctx, brokers, group, in, out, n, func(r *kgo.Record) *kgo.Record {
		counts[string(r.Key)]++
		v := binary.BigEndian.AppendUint64(nil, uint64(counts[string(r.Key)]))
		return &kgo.Record{Key: r.Key, Value: v, Timestamp: r.Timestamp}
	}, nil, done)
}

// runnelCount runs the Runnel count in mode m until its committed offsets
// cover the input.
func runnelCount(ctx context.Context, c *kafkatest.Cluster, m e2eMode, stateDir, appID, in, out string, p *phase) error {
	b := stream.NewBuilder()
	grouped := stream.From(b, in, serde.Bytes, serde.Bytes).GroupByKey(serde.Bytes, serde.Bytes)
	grouped.Count(stream.Materialized("counts")).ToStream().To(out, serde.Bytes, serde.Int64)
	return runCommitted(ctx, c, b, stream.Config{
		AppID: appID, Brokers: c.Brokers(), StateDir: stateDir, CacheMaxBytes: *countCache,
		Guarantee: m.guarantee, CommitInterval: m.commit,
	}, in, p)
}

// BenchmarkRestore restores a store from a changelog of -restore.records
// records (distinct 12-byte keys, 8-byte values, one partition) into an
// empty state directory and reports the restoration rate, timed by the
// restore listener from the start to the end of the store's restoration.
//
//	go test ./stream -run '^$' -bench Restore -benchtime 1x -count 3
func BenchmarkRestore(b *testing.B) {
	n := *restoreSize
	c := kafkatest.StartT(b)
	ctx := context.Background()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		appID := fmt.Sprintf("restore-%d", i)
		in, out, changelog := appID+"-in", appID+"-out", appID+"-counts-changelog"
		for _, t := range []string{in, out} {
			if err := c.CreateTopic(ctx, t, 1, nil); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.CreateTopic(ctx, changelog, 1, map[string]*string{"cleanup.policy": ptr("compact")}); err != nil {
			b.Fatal(err)
		}
		const chunk = 10_000
		for start := 0; start < n; start += chunk {
			recs := make([]*kgo.Record, 0, min(chunk, n-start))
			for k := start; k < start+cap(recs); k++ {
				recs = append(recs, &kgo.Record{Topic: changelog, Key: fmt.Appendf(nil, "key-%08d", k), Value: binary.BigEndian.AppendUint64(nil, uint64(k))})
			}
			if err := c.Produce(ctx, recs...); err != nil {
				b.Fatal(err)
			}
		}
		bld := stream.NewBuilder()
		grouped := stream.From(bld, in, serde.Bytes, serde.Bytes).GroupByKey(serde.Bytes, serde.Bytes)
		grouped.Count(stream.Materialized("counts")).ToStream().To(out, serde.Bytes, serde.Int64)
		timer := &restoreTimer{done: make(chan struct{})}
		app, err := stream.NewApp(bld, stream.Config{
			AppID: appID, Brokers: c.Brokers(), StateDir: b.TempDir(), RestoreListener: timer,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			b.Fatal(err)
		}
		runCtx, stop := context.WithTimeout(ctx, pipeTimeout)
		runErr := make(chan error, 1)
		go func() { runErr <- app.Run(runCtx) }()
		select {
		case <-timer.done:
		case err := <-runErr:
			b.Fatalf("Run returned before restoring: %v", err)
		}
		stop()
		if err := <-runErr; err != nil {
			b.Fatal(err)
		}
		if timer.restored != int64(n) {
			b.Fatalf("restored %d records, want %d", timer.restored, n)
		}
		total += timer.end.Sub(timer.start)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "records/s")
}

// restoreTimer is a state.RestoreListener timing one store's restoration.
type restoreTimer struct {
	mu         sync.Mutex
	start, end time.Time
	restored   int64
	done       chan struct{}
}

func (r *restoreTimer) OnRestoreStart(string, int32, string, int64, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.start = time.Now()
}

func (r *restoreTimer) OnBatchRestored(_ string, _ int32, _ string, _, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restored += n
}

func (r *restoreTimer) OnRestoreEnd(string, int32, string, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.end = time.Now()
	close(r.done)
}

func ptr(s string) *string { return &s }
