// Package kafkatest adds to the embedded cluster of package devbroker the
// client-side helpers that tests, runnable examples and benchmarks need:
// producing, reading back committed data and inspecting committed group
// offsets.
//
// The package imports package testing, for StartT (in kafkatest_testing.go),
// the convenience for tests and benchmarks. The rest of the API does not use
// it, so runnable examples and benchmarks' setup code can call Start and
// handle errors themselves.
//
// Every helper creates its own short-lived franz-go client and closes it
// before returning, so helpers never leave goroutines behind.
package kafkatest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/runnel-dev/runnel/devbroker"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// metadataMinAge is the metadata refresh floor of the helpers' clients, so
// that a consumer started before its topic exists notices the topic quickly
// (franz-go's default is 5s).
const metadataMinAge = 50 * time.Millisecond

// Cluster is a devbroker cluster with the test helpers. To use the helpers
// on a cluster started with devbroker.Start, wrap it: &Cluster{Cluster: c}.
//
// A Cluster is safe for concurrent use. The caller must call Close (StartT
// arranges it).
type Cluster struct {
	*devbroker.Cluster
}

// Start starts a devbroker cluster with one broker and the default group
// minimum session timeout; opts are applied last, so kfake.NumBrokers,
// kfake.Ports or kfake.GroupMinSessionTimeout override them.
func Start(opts ...kfake.Opt) (*Cluster, error) {
	c, err := devbroker.Start(devbroker.Config{Kfake: opts})
	if err != nil {
		return nil, err
	}
	return &Cluster{Cluster: c}, nil
}

// clientOpts returns the options every helper client starts from.
func (c *Cluster) clientOpts(extra ...kgo.Opt) []kgo.Opt {
	return c.ClientOpts(append([]kgo.Opt{kgo.MetadataMinAge(metadataMinAge)}, extra...)...)
}

// Produce synchronously produces recs, each with its Topic set, with
// franz-go's default partitioner (record Partition fields are ignored and
// overwritten). It returns the first produce error. The records are updated in
// place with their partition and offset, as kgo.Client.ProduceSync does.
func (c *Cluster) Produce(ctx context.Context, recs ...*kgo.Record) error {
	return c.produce(ctx, recs)
}

// ProduceToPartitions is Produce with the manual partitioner: each record
// goes to its own Partition, which must exist.
func (c *Cluster) ProduceToPartitions(ctx context.Context, recs ...*kgo.Record) error {
	return c.produce(ctx, recs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
}

func (c *Cluster) produce(ctx context.Context, recs []*kgo.Record, opts ...kgo.Opt) error {
	cl, err := kgo.NewClient(c.clientOpts(append(opts, kgo.ProducerLinger(0))...)...)
	if err != nil {
		return fmt.Errorf("kafkatest: producer: %w", err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("kafkatest: producing: %w", err)
	}
	return nil
}

// ReadCommitted consumes topic from the start with a read_committed consumer
// (no group) until it has seen at least n records or ctx is done. Records are
// returned in per-partition offset order, partitions interleaved as fetched;
// it may return more than n records if they arrived in the same fetch, which
// lets tests notice duplicates. If ctx ends first it returns the records seen
// so far and an error saying how many it got, wrapping ctx.Err().
//
// The topic need not exist yet when ReadCommitted is called.
func (c *Cluster) ReadCommitted(ctx context.Context, topic string, n int) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(c.clientOpts(
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: consumer: %w", err)
	}
	defer cl.Close()

	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			recs = append(recs, fs.Records()...)
			if len(recs) >= n {
				break
			}
			return recs, fmt.Errorf("kafkatest: read %d of %d records from %q: %w", len(recs), n, topic, err)
		}
		if err := fetchErr(fs); err != nil {
			return recs, fmt.Errorf("kafkatest: reading %q: %w", topic, err)
		}
		recs = append(recs, fs.Records()...)
	}
	return recs, nil
}

// ReadAll reads every committed record in topic up to the last stable
// offsets listed when it is called, and returns them ordered by partition,
// then offset. Aborted records and transaction markers are not returned.
// Records of transactions still open at call time are not waited for.
//
// ReadAll reads until its position in each partition reaches the listed end
// offset. Because that offset may sit just after a commit or abort marker,
// which a plain consumer never returns, it consumes with
// kgo.KeepControlRecords and counts markers towards its position.
func (c *Cluster) ReadAll(ctx context.Context, topic string) ([]*kgo.Record, error) {
	return c.readAll(ctx, topic, false)
}

// ReadAllUncommitted is ReadAll at read_uncommitted: it reads every data
// record in topic up to the high watermarks listed when it is called,
// aborted ones and those of open transactions included.
func (c *Cluster) ReadAllUncommitted(ctx context.Context, topic string) ([]*kgo.Record, error) {
	return c.readAll(ctx, topic, true)
}

// readAll is ReadAll, or ReadAllUncommitted when uncommitted is true.
func (c *Cluster) readAll(ctx context.Context, topic string, uncommitted bool) ([]*kgo.Record, error) {
	starts, err := c.Admin().ListStartOffsets(ctx, topic)
	if err == nil {
		err = listedErr(starts)
	}
	if err != nil {
		return nil, fmt.Errorf("kafkatest: listing start offsets of %q: %w", topic, err)
	}
	listEnds, isolation := c.Admin().ListCommittedOffsets, kgo.ReadCommitted()
	if uncommitted {
		listEnds, isolation = c.Admin().ListEndOffsets, kgo.ReadUncommitted()
	}
	ends, err := listEnds(ctx, topic)
	if err == nil {
		err = listedErr(ends)
	}
	if err != nil {
		return nil, fmt.Errorf("kafkatest: listing end offsets of %q: %w", topic, err)
	}

	// want holds the partitions with data and the position to reach in each.
	want := make(map[int32]int64)
	from := make(map[int32]kgo.Offset)
	ends.Each(func(o kadm.ListedOffset) {
		start, _ := starts.Lookup(topic, o.Partition)
		if o.Offset > start.Offset {
			want[o.Partition] = o.Offset
			from[o.Partition] = kgo.NewOffset().At(start.Offset)
		}
	})
	if len(want) == 0 {
		return nil, nil
	}

	cl, err := kgo.NewClient(c.clientOpts(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchIsolationLevel(isolation),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: consumer: %w", err)
	}
	defer cl.Close()

	var recs []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("kafkatest: reading %q: %d partitions short of their end offsets %v: %w",
				topic, len(want), want, err)
		}
		if err := fetchErr(fs); err != nil {
			return nil, fmt.Errorf("kafkatest: reading %q: %w", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return // beyond what was listed at call time
			}
			if !r.Attrs.IsControl() {
				recs = append(recs, r)
			}
			if r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	slices.SortStableFunc(recs, func(a, b *kgo.Record) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	return recs, nil
}

// CommittedOffsets returns the offsets group has committed on topic, by
// partition. Partitions without a commit are absent; a group that does not
// exist has no commits.
func (c *Cluster) CommittedOffsets(ctx context.Context, group, topic string) (map[int32]int64, error) {
	resps, err := c.Admin().FetchOffsets(ctx, group)
	if err == nil {
		err = resps.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		// kfake answers GROUP_ID_NOT_FOUND for a group it has never seen,
		// where Kafka answers with no offsets.
		return map[int32]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kafkatest: fetching offsets of group %q: %w", group, err)
	}
	out := make(map[int32]int64)
	for p, r := range resps[topic] {
		if r.At >= 0 {
			out[p] = r.At
		}
	}
	return out, nil
}

// fetchErr returns the first fetch error that is not retriable (such as an
// unknown topic, which the client keeps retrying) and not a context error,
// which callers check themselves.
func fetchErr(fs kgo.Fetches) error {
	for _, fe := range fs.Errors() {
		if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) ||
			kerr.IsRetriable(fe.Err) {
			continue
		}
		return fmt.Errorf("partition %d: %w", fe.Partition, fe.Err)
	}
	return nil
}

// listedErr returns the first per-partition error in l, such as
// kerr.UnknownTopicOrPartition for a topic that does not exist.
func listedErr(l kadm.ListedOffsets) error {
	var err error
	l.Each(func(o kadm.ListedOffset) {
		if err == nil && o.Err != nil {
			err = o.Err
		}
	})
	return err
}

// WaitFor calls cond every few milliseconds until it returns true or an
// error, or ctx is done. It returns nil once cond is true, cond's error as
// is, or, when ctx ends first, an error wrapping ctx.Err() that says how many
// times cond was checked and that it was still false. Tests use it instead
// of sleeps.
func WaitFor(ctx context.Context, cond func() (bool, error)) error {
	const interval = 5 * time.Millisecond
	t := time.NewTicker(interval)
	defer t.Stop()
	begin := time.Now()
	for checks := 1; ; checks++ {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafkatest: condition still false after %d checks over %v: %w",
				checks, time.Since(begin).Round(time.Millisecond), ctx.Err())
		case <-t.C:
		}
	}
}
