package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel/state"
)

// Changelogs reads changelog partitions for restoration. The runtime
// reads Kafka; package streamtest has nothing to restore.
type Changelogs interface {
	// Bounds returns the first and the end (next) offset of a partition,
	// reading committed data only.
	Bounds(ctx context.Context, topic string, partition int32) (start, end int64, err error)
	// Read calls apply with the records of a partition from offset from
	// up to end, batch by batch; next is the offset after the batch.
	Read(ctx context.Context, topic string, partition int32, from, end int64, apply func(writes []state.Write, next int64) error) error
}

// Restore brings the task's logged stores up to the end of their
// changelogs, from each store's checkpoint when its local state is usable
// and from the start otherwise. It must finish before the task processes.
func (t *Task) Restore(ctx context.Context, cl Changelogs, listener state.RestoreListener) error {
	for _, st := range t.storeList {
		if st.changelog == "" {
			continue
		}
		if err := t.restoreStore(ctx, cl, listener, st); err != nil {
			return fmt.Errorf("task %s: restoring store %q from %s: %w", t.cfg.ID, st.spec.Name, st.changelog, err)
		}
	}
	return nil
}

func (t *Task) restoreStore(ctx context.Context, cl Changelogs, listener state.RestoreListener, st *taskStore) error {
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
		if end > first {
			t.log.Info("restoring store fully from its changelog", "store", name, "reason", reason, "topic", topic, "partition", p, "records", end-first)
		}
	}
	st.position = from
	if from >= end {
		st.position = end
		return nil
	}
	if listener != nil {
		listener.OnRestoreStart(topic, p, name, from, end)
	}
	started := time.Now()
	var total int64
	err = cl.Read(ctx, topic, p, from, end, func(writes []state.Write, next int64) error {
		if err := t.state.Restore(name, writes, next); err != nil {
			return err
		}
		total += int64(len(writes))
		st.position = next
		if t.cfg.OnRestored != nil {
			t.cfg.OnRestored(len(writes))
		}
		if listener != nil {
			listener.OnBatchRestored(topic, p, name, next, int64(len(writes)))
		}
		return nil
	})
	if err != nil {
		return err
	}
	secs := time.Since(started).Seconds()
	t.log.Info("restored store", "store", name, "topic", topic, "partition", p, "from", from, "to", end,
		"records", total, "seconds", secs, "records_per_second", int64(float64(total)/max(secs, 1e-9)))
	if listener != nil {
		listener.OnRestoreEnd(topic, p, name, total)
	}
	return nil
}
