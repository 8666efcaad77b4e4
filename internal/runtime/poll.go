package runtime

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// poll is the poll loop: fetch, dispatch to tasks, commit when due.
func (r *Runtime) poll(ctx context.Context) error {
	nextCommit := time.Now().Add(r.cfg.CommitInterval)
	nextCleanup := time.Now().Add(r.cfg.StateCleanupDelay)
	for {
		timeout := min(100*time.Millisecond, max(time.Until(nextCommit), time.Millisecond))
		if r.waitForRoom(ctx, timeout) {
			pctx, cancel := context.WithTimeout(ctx, timeout)
			fetches := r.cl.PollRecords(pctx, 10_000)
			cancel()
			if fetches.IsClientClosed() && ctx.Err() == nil {
				return errors.New("stream: client closed")
			}
			fetches.EachError(func(topic string, p int32, err error) {
				if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					r.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
					r.failOnAccessError(topic, p, err)
				}
			})
			if ctx.Err() == nil {
				r.dispatch(fetches)
			}
		}
		if ctx.Err() != nil {
			r.cl.AllowRebalance()
			return nil
		}
		select {
		case <-r.failed:
			r.cl.AllowRebalance()
			return r.err
		default:
		}
		commitNow := time.Now().After(nextCommit)
		select {
		case <-r.commitRequested:
			commitNow = true
		default:
		}
		if commitNow {
			r.blockRebalances()
			r.mu.Lock()
			err := r.commitLocked(ctx, r.workersLocked())
			if errors.Is(err, errAborted) {
				r.restartTasksLocked()
				err = nil
			}
			r.mu.Unlock()
			if err != nil {
				if errors.As(err, new(*rejoinError)) {
					// The client is doomed: close the tasks before the
					// group's callbacks may run again, so none opens a
					// task on it.
					r.mu.Lock()
					r.mu.rejoining = true
					r.closeWorkersLocked(context.Background(), false, false)
					r.mu.Unlock()
					r.cl.AllowRebalance()
					return err
				}
				r.cl.AllowRebalance()
				if ctx.Err() != nil && r.fatal() == nil {
					// Cancelled mid-commit: a clean shutdown, whose final
					// commit (not bound to ctx) redoes this one.
					return nil
				}
				return err
			}
			nextCommit = time.Now().Add(r.cfg.CommitInterval)
			r.purgeRepartitionTopics(ctx)
		}
		if now := time.Now(); r.db != nil && r.cfg.StateCleanupDelay > 0 && now.After(nextCleanup) {
			r.cleanState(now)
			nextCleanup = now.Add(min(r.cfg.StateCleanupDelay, time.Minute))
		}
		r.cl.AllowRebalance()
	}
}

// dispatch hands fetched records to their tasks.
func (r *Runtime) dispatch(fetches kgo.Fetches) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		w := r.workerForLocked(p.Topic, p.Partition)
		if w == nil {
			r.log.Debug("dropping records of an unassigned partition", "topic", p.Topic, "partition", p.Partition)
			return
		}
		w.enqueue(p.Records)
	})
}

// workerForLocked returns the worker of a partition's task. REQUIRES: r.mu held.
func (r *Runtime) workerForLocked(topic string, partition int32) *worker {
	for _, w := range r.mu.workers {
		if w.task.ID().Partition == partition && slices.ContainsFunc(w.partitions, func(tp topicPartition) bool { return tp.topic == topic }) {
			return w
		}
	}
	return nil
}

// workersLocked returns the workers sorted by task. REQUIRES: r.mu held.
func (r *Runtime) workersLocked() []*worker {
	ws := make([]*worker, 0, len(r.mu.workers))
	for _, w := range r.mu.workers {
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b *worker) int { return compareTasks(a.task.ID(), b.task.ID()) })
	return ws
}
