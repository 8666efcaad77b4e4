package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel/internal/storage"
	"github.com/twmb/franz-go/pkg/kgo"
)

// changelogReader implements Changelogs on Kafka: offsets from the admin
// client, records from a consumer of its own per read (read_committed,
// assigned partitions, no group).
type changelogReader struct{ r *Runtime }

var _ Changelogs = changelogReader{}

// Bounds implements Changelogs: the log start offset and the last stable
// offset, once no transaction is open on the partition (the last stable
// offset then equals the high watermark). A changelog created moments ago
// may not be known to every broker yet, so errors are retried for up to
// boundsTimeout, or the transaction timeout and 10s if longer.
//
// Waiting out open transactions matters under exactly-once: the task's
// previous owner may have died (or hang as a zombie) mid-transaction; its
// transaction ends in an abort at the transaction timeout, or in a commit
// whose changelog records restoration must not miss, since the group's
// offsets then include the records that produced them.
func (c changelogReader) Bounds(ctx context.Context, topic string, partition int32) (start, end int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, max(boundsTimeout, c.r.cfg.TransactionTimeout+10*time.Second))
	defer cancel()
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		if start, end, err = c.bounds(ctx, topic, partition); err == nil {
			return start, end, nil
		}
		select {
		case <-ctx.Done():
			return 0, 0, err
		case <-time.After(backoff):
		}
	}
}

// boundsTimeout bounds Bounds' retries.
const boundsTimeout = 30 * time.Second

func (c changelogReader) bounds(ctx context.Context, topic string, partition int32) (start, end int64, err error) {
	starts, err := c.r.adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("listing start offsets: %w", err)
	}
	ends, err := c.r.adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("listing end offsets: %w", err)
	}
	hwms, err := c.r.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = hwms.Error()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("listing end offsets: %w", err)
	}
	s, ok1 := starts.Lookup(topic, partition)
	e, ok2 := ends.Lookup(topic, partition)
	h, ok3 := hwms.Lookup(topic, partition)
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, fmt.Errorf("partition %d of %s not found", partition, topic)
	}
	if e.Offset < h.Offset {
		return 0, 0, fmt.Errorf("a transaction is open on partition %d of %s (last stable offset %d, high watermark %d)", partition, topic, e.Offset, h.Offset)
	}
	return s.Offset, e.Offset, nil
}

// restoreBatch is how many records a restore write applies at most.
const restoreBatch = 10_000

// Read implements Changelogs.
func (c changelogReader) Read(ctx context.Context, topic string, partition int32, from, end int64, apply func([]storage.Write, int64) error) error {
	cl, err := c.r.newRestoreConsumer(topic, partition, from)
	if err != nil {
		return err
	}
	defer cl.Close()
	writes := make([]storage.Write, 0, restoreBatch)
	next := from
	for next < end {
		fetches := cl.PollRecords(ctx, restoreBatch)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return fmt.Errorf("fetching: %w", ferr)
		}
		writes = writes[:0]
		fetches.EachRecord(func(rec *kgo.Record) {
			if rec.Offset >= end || rec.Offset < next {
				return
			}
			next = rec.Offset + 1
			if !rec.Attrs.IsControl() {
				writes = append(writes, storage.Write{Key: rec.Key, Value: rec.Value})
			}
		})
		if len(writes) > 0 || next >= end {
			if err := apply(writes, next); err != nil {
				return err
			}
		}
	}
	return nil
}
