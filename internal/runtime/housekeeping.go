package runtime

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// purgeRepartitionTopics deletes the records of repartition topics below
// the committed offsets, at most every PurgeInterval, as Kafka Streams does
// (repartition.purge.interval.ms): they are read once, and the topics are
// created with infinite retention. Failures are logged and retried later.
func (r *Runtime) purgeRepartitionTopics(ctx context.Context) {
	r.mu.Lock()
	if len(r.mu.purgeable) == 0 || time.Since(r.mu.lastPurge) < r.cfg.PurgeInterval {
		r.mu.Unlock()
		return
	}
	offsets := r.mu.purgeable
	r.mu.purgeable, r.mu.lastPurge = kadm.Offsets{}, time.Now()
	r.mu.Unlock()
	resps, err := r.adm.DeleteRecords(ctx, offsets)
	if err == nil {
		err = resps.Error()
	}
	if err != nil && ctx.Err() == nil {
		r.log.Warn("purging repartition topics failed", "err", err)
	}
}

// cleanState deletes the local state of the tasks this instance has not
// owned for StateCleanupDelay (counted from their last close here, or from
// the start of Run), as Kafka Streams' state directory cleaner does
// (state.cleanup.delay.ms). Such a task, if it comes back, restores from
// the start of its changelog. Failures are logged and retried later.
func (r *Runtime) cleanState(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closing {
		return
	}
	ids, err := r.db.Tasks()
	if err != nil {
		r.log.Warn("listing local task state", "err", err)
		return
	}
	owned := map[string]bool{}
	for id := range r.mu.workers {
		owned[id.String()] = true
	}
	for _, id := range ids {
		since, ok := r.mu.released[id]
		if !ok {
			since = r.started
		}
		if owned[id] || now.Sub(since) < r.cfg.StateCleanupDelay {
			continue
		}
		if err := r.db.DropTask(id); err != nil {
			r.log.Warn("deleting local task state", "task", id, "err", err)
			continue
		}
		delete(r.mu.released, id)
		r.log.Info("deleted the local state of a task this instance does not own", "task", id, "unowned_for", now.Sub(since).Round(time.Millisecond))
	}
}
