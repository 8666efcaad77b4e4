package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel/internal/storage"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/stream/event"
)

// Changelogs reads changelog partitions for restoration. The runtime
// reads Kafka; package streamtest has nothing to restore.
type Changelogs interface {
	// Bounds returns the first and the end (next) offset of a partition,
	// reading committed data only.
	Bounds(ctx context.Context, topic string, partition int32) (start, end int64, err error)
	// Read calls apply with the records of a partition from offset from
	// up to end, batch by batch; next is the offset after the batch.
	Read(ctx context.Context, topic string, partition int32, from, end int64, apply func(writes []storage.Write, next int64) error) error
}

// Restore brings the task's logged stores up to the end of their
// changelogs, from each store's checkpoint when its local state is usable
// and from the start otherwise. It must finish before the task processes.
// It reports its progress to the task's event listener.
func (t *Task) Restore(ctx context.Context, cl Changelogs) error {
	for _, st := range t.storeList {
		if st.changelog == "" {
			continue
		}
		if err := t.restoreStore(ctx, cl, st); err != nil {
			return fmt.Errorf("task %s: restoring store %q from %s: %w", t.cfg.ID, st.spec.Name, st.changelog, err)
		}
	}
	return nil
}

func (t *Task) restoreStore(ctx context.Context, cl Changelogs, st *taskStore) error {
	name, topic, p := st.spec.Name, st.changelog, t.cfg.ID.Partition
	first, end, err := cl.Bounds(ctx, topic, p)
	if err != nil {
		return err
	}
	from, ok, err := t.state.Checkpoint(name)
	reason := ""
	switch {
	case err != nil:
		reason = fmt.Sprintf("its checkpoint is unreadable (%v)", err)
	case !ok && st.spec.Engine == state.InMemory:
		reason = "it is in memory"
	case !ok:
		reason = "it has no local checkpoint"
	case from > end:
		reason = fmt.Sprintf("its checkpoint %d is past the changelog end %d (was the changelog recreated?)", from, end)
	case from < first:
		reason = fmt.Sprintf("its checkpoint %d is before the changelog start %d", from, first)
	}
	if reason != "" {
		if err := t.state.Wipe(name); err != nil {
			return err
		}
		from = first
	}
	st.position = from
	if from >= end {
		st.position = end
		return nil
	}
	info := event.RestoreInfo{Task: t.cfg.ID, Store: name, Topic: topic, Partition: p, StartOffset: from, EndOffset: end, FullReason: reason}
	t.cfg.Events.RestoreStart(info)
	info.FullReason = ""
	started := time.Now()
	var total int64
	err = cl.Read(ctx, topic, p, from, end, func(writes []storage.Write, next int64) error {
		if err := t.state.Restore(name, writes, next); err != nil {
			return err
		}
		total += int64(len(writes))
		st.position = next
		info.Offset, info.Records = next, int64(len(writes))
		t.cfg.Events.RestoreProgress(info)
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			info.Records = total
			t.cfg.Events.RestoreSuspended(info)
		}
		return err
	}
	info.Offset, info.Records, info.Duration = end, total, time.Since(started)
	t.cfg.Events.RestoreEnd(info)
	return nil
}
