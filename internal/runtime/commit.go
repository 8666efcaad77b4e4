package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel/stream/event"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// blockRebalances keeps the group from rebalancing until the next
// AllowRebalance, so that commits never run concurrently with the group's
// callbacks: a poll with a cancelled context returns at once but, with
// kgo.BlockRebalanceOnPoll, counts as a poll whose records are being
// processed (one that returned no fetch at all does not count). Under
// exactly-once this prevents a deadlock: the transactional session's revocation
// callback holds the lock that ending a transaction needs while it calls
// onRevoked, which waits for r.mu. It waits for a rebalance in progress to
// finish, so it must not be called with r.mu held.
func (r *Runtime) blockRebalances() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.cl.PollRecords(ctx, 1)
}

// commitLocked brings every worker to a barrier between records, flushes
// the record caches and the producer, and commits: the tasks' state is
// made durable and the workers' consumed offsets committed (at-least-once),
// or the transaction is committed first (exactly-once, see
// commitTransactionLocked). Records that failed to produce and state that failed
// to persist fail the commit, so their inputs are never committed.
// REQUIRES: r.mu held.
func (r *Runtime) commitLocked(ctx context.Context, ws []*worker) error {
	started := time.Now()
	for _, w := range ws {
		w.mu.Lock()
		defer w.mu.Unlock()
	}
	if err := r.fatal(); err != nil {
		return err // a task failed: its partial work must not be committed
	}
	for _, w := range ws {
		if w.mu.restored {
			if err := w.task.FlushCache(); err != nil {
				r.fail(err) // the flush is half done: nothing may commit
				return err
			}
		}
	}
	if err := r.cl.Flush(ctx); err != nil {
		return fmt.Errorf("stream: flushing produced records: %w", err)
	}
	if err := r.fatal(); err != nil {
		return err // a record failed to produce
	}
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for _, w := range ws {
		for topic, ps := range w.task.Offsets() {
			if offsets[topic] == nil {
				offsets[topic] = map[int32]kgo.EpochOffset{}
			}
			for p, o := range ps {
				offsets[topic][p] = o
			}
		}
	}
	if r.txn != nil {
		committed, err := r.commitTransactionLocked(offsets)
		if err != nil {
			// Aborted or failed: the tasks go back to the last commit
			// (restartTasksLocked, or Run's rejoin). Until they are
			// closed their workers must not process another record:
			// its output would go to the next transaction and be
			// committed along with its reprocessing (duplicates), or
			// fail to produce outside a transaction.
			for _, w := range ws {
				w.halt()
			}
			return err
		}
		if committed {
			r.committedLocked(ws, offsets, started)
		}
		return r.commitStatesLocked(ws)
	}
	// Local state is made durable before the offsets are committed: a
	// crash in between reprocesses input over state that already holds
	// it (at-least-once), never the reverse.
	if err := r.commitStatesLocked(ws); err != nil {
		return err
	}
	if len(offsets) == 0 {
		return nil
	}
	var commitErr error
	r.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			commitErr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && commitErr == nil {
					commitErr = fmt.Errorf("%s-%d: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	if commitErr != nil {
		// Not fatal under at-least-once: the group moved on (rebalance or
		// fencing) and the new owner reprocesses from the last commit.
		r.log.Warn("offset commit failed; records since the last commit will be processed again", "err", commitErr)
		return nil
	}
	r.committedLocked(ws, offsets, started)
	return nil
}

// commitStatesLocked makes the restored tasks' state durable: each task's batch
// and changelog checkpoints in one atomic write. A failure fails the app.
func (r *Runtime) commitStatesLocked(ws []*worker) error {
	for _, w := range ws {
		if w.mu.restored {
			if err := w.task.CommitState(); err != nil {
				r.fail(err)
				return err
			}
		}
	}
	return nil
}

// committedLocked reports a successful commit of the workers ws, started
// at started, and remembers the committed offsets of repartition topics
// for purging. REQUIRES: r.mu held, workers at the barrier.
func (r *Runtime) committedLocked(ws []*worker, offsets map[string]map[int32]kgo.EpochOffset, started time.Time) {
	for topic, ps := range offsets {
		if r.repartition[topic] {
			for p, o := range ps {
				r.mu.purgeable.Add(kadm.Offset{Topic: topic, Partition: p, At: o.Offset})
			}
		}
	}
	info := event.CommitInfo{Duration: time.Since(started)}
	for _, ps := range offsets {
		info.Partitions += len(ps)
	}
	for _, w := range ws {
		info.Records += w.mu.processed
		w.mu.processed = 0
	}
	r.events.Commit(info)
}

// requestCommit asks the poll loop for a commit at its next turn.
func (r *Runtime) requestCommit() {
	select {
	case r.commitRequested <- struct{}{}:
	default:
	}
}
