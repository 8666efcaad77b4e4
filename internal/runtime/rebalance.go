package runtime

import (
	"context"
	"errors"
	"time"

	"github.com/runnel-dev/runnel/stream/event"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kgo"
)

// restartTasksLocked closes every task without committing and opens it
// again, after an aborted transaction: its state goes back to the last
// commit (the batch is discarded; restoration replays nothing or the
// committed tail), as its input does (the aborting session rewound the
// consumer to the committed offsets). REQUIRES: r.mu held.
func (r *Runtime) restartTasksLocked() {
	assigned := r.closeWorkersLocked(context.Background(), false, false)
	r.assignLocked(assigned)
}

// assign starts the tasks of the assigned partitions and reports whether it
// did.
func (r *Runtime) assign(assigned map[string][]int32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closing || r.mu.rejoining || r.fatal() != nil {
		return false
	}
	return r.assignLocked(assigned)
}

// assignLocked is assign with r.mu held.
func (r *Runtime) assignLocked(assigned map[string][]int32) bool {
	for topic, ps := range assigned {
		sub, ok := r.subOf(topic)
		if !ok {
			continue
		}
		for _, p := range ps {
			id := topology.TaskID{Subtopology: sub, Partition: p}
			w := r.mu.workers[id]
			if w == nil {
				var err error
				if w, err = r.newWorker(id); err != nil {
					r.fail(err)
					return false
				}
				r.mu.workers[id] = w
			}
			w.partitions = append(w.partitions, topicPartition{topic, p})
		}
	}
	for _, w := range r.mu.workers {
		w.start()
	}
	r.events.TasksAssigned(event.TasksInfo{Tasks: workerTasks(r.workersLocked())})
	return true
}

// onRevoked stops every task at a record boundary, commits their work and
// closes them (the protocol is eager: everything is revoked). Under
// exactly-once a transaction cannot end inside the group's callback, so
// the tasks are closed without committing and the poll loop is asked to
// end the transaction, which the session aborts: the new owners process
// those records again, from the last commit.
func (r *Runtime) onRevoked(ctx context.Context, _ *kgo.Client, _ map[string][]int32) {
	r.callbackRuns()
	r.notifyRebalancing("revoke")
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, closeTimeout)
	defer cancel()
	r.closeWorkersLocked(ctx, r.fatal() == nil && r.txn == nil, false)
	r.endTransactionSoonLocked()
}

// onLost closes every task without committing: another member may already
// own the partitions.
func (r *Runtime) onLost(ctx context.Context, _ *kgo.Client, _ map[string][]int32) {
	r.callbackRuns()
	r.notifyRebalancing("lost")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeWorkersLocked(ctx, false, true)
	r.endTransactionSoonLocked()
}

// endTransactionSoonLocked, under exactly-once, asks the poll loop to end
// the open transaction (which the session aborts after a revocation or a
// loss) even if it looks empty, so that the new tasks start in a fresh
// one. REQUIRES: r.mu held.
func (r *Runtime) endTransactionSoonLocked() {
	if r.txn != nil {
		r.txn.endSoon = true
		r.requestCommit()
	}
}

// notifyRebalancing reports a rebalance, unless the revocation comes from
// leaving the group at shutdown (a failing app must not look rebalancing).
func (r *Runtime) notifyRebalancing(reason string) {
	r.mu.Lock()
	closing := r.mu.closing
	r.mu.Unlock()
	if !closing {
		r.events.RebalanceStart(event.RebalanceInfo{Reason: reason})
	}
}

// closeWorkersLocked stops all workers, commits their work if commit is
// set, and closes their tasks; lost says the group took them away. It
// returns the partitions they had. REQUIRES: r.mu held.
func (r *Runtime) closeWorkersLocked(ctx context.Context, commit, lost bool) map[string][]int32 {
	ws := r.workersLocked()
	for _, w := range ws {
		w.stopAndWait()
	}
	if commit && len(ws) > 0 {
		err := r.commitLocked(ctx, ws)
		if errors.Is(err, errAborted) {
			r.log.Warn("the last transaction was aborted; its records will be processed again")
		} else if err != nil {
			r.fail(err)
		}
	}
	resume := map[string][]int32{}
	now := time.Now()
	for _, w := range ws {
		r.mu.released[w.task.ID().String()] = now
		if err := w.task.Close(); err != nil {
			r.log.Warn("closing task", "task", w.task.ID().String(), "err", err)
		}
		for _, tp := range w.partitions {
			resume[tp.topic] = append(resume[tp.topic], tp.partition)
		}
		delete(r.mu.workers, w.task.ID())
	}
	if len(resume) > 0 {
		r.cl.ResumeFetchPartitions(resume)
	}
	if len(ws) > 0 {
		r.events.TasksRevoked(event.TasksInfo{Tasks: workerTasks(ws), Lost: lost})
	}
	return resume
}

// workerTasks returns the tasks of ws, in order.
func workerTasks(ws []*worker) []topology.TaskID {
	ids := make([]topology.TaskID, len(ws))
	for i, w := range ws {
		ids[i] = w.task.ID()
	}
	return ids
}
