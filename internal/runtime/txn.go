package runtime

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// errAborted reports a transaction Kafka aborted (a rebalance, a fenced
// group generation, an abortable error): its records will be processed
// again from the last commit.
var errAborted = errors.New("runtime: transaction aborted")

// commitTransaction commits the open transaction, which holds every
// record produced since the last commit (outputs and changelogs), with the
// consumed offsets and the group's generation (KIP-447: a zombie whose
// generation is stale cannot commit). The caller then applies the tasks'
// state batches: a crash in between leaves local state at the previous
// transaction, and restoration replays the committed changelog tail. It
// begins the next transaction before returning, so tasks always produce
// into an open one. It returns errAborted when Kafka aborted the
// transaction, and a *rejoinError when the producer cannot go on (fenced,
// or out of retries). REQUIRES: workers at the barrier, producer flushed.
func (r *Runtime) commitTransaction(offsets map[string]map[int32]kgo.EpochOffset) error {
	// End's context must not be cancelled while the commit is in flight
	// (its outcome would be unknown); closeTimeout bounds it instead.
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	r.endMu.Lock()
	r.endCancel = cancel
	pending := r.pendingCallback
	r.endMu.Unlock()
	defer func() {
		r.endMu.Lock()
		r.endCancel = nil
		r.endMu.Unlock()
	}()
	txnErr := r.takeTxnErr()
	if txnErr == nil && !r.endTxn && r.prod.sent.Load() == 0 && maps.EqualFunc(offsets, r.lastTxnOffsets, maps.Equal) {
		// Nothing produced or processed since the last commit: an empty
		// transaction costs requests (and see setTxnOffsets).
		return nil
	}
	r.prod.sent.Store(0)
	// Until End succeeds, the next commit must not be skipped.
	r.lastTxnOffsets, r.endTxn = nil, true
	polled := r.cl.CommittedOffsets()
	ctx = kgo.PreTxnCommitFnContext(ctx, func(req *kmsg.TxnOffsetCommitRequest) error {
		setTxnOffsets(req, offsets, polled)
		return nil
	})
	try := kgo.TryCommit
	if txnErr != nil {
		r.log.Warn("aborting the transaction: a record in it failed to produce", "err", txnErr)
		try = kgo.TryAbort
	} else if pending {
		// The group is rebalancing, or has evicted this member: the
		// session would abort this transaction once the callback has
		// run, or End would wait for a heartbeat that never comes (see
		// onCallbackBlocked).
		r.log.Info("aborting the transaction: the group is rebalancing")
		try = kgo.TryAbort
	}
	committed, err := r.sess.End(ctx, try)
	if err != nil {
		return &rejoinError{fmt.Errorf("runtime: ending the transaction: %w", err)}
	}
	if err := r.sess.Begin(); err != nil {
		return &rejoinError{fmt.Errorf("runtime: beginning a transaction: %w", err)}
	}
	r.endTxn = false
	if !committed {
		r.cfg.Metrics.aborts.Inc()
		r.log.Info("transaction aborted; the records since the last commit will be processed again")
		return errAborted
	}
	r.lastTxnOffsets, r.rejoins = offsets, 0
	r.committed(offsets)
	return nil
}

// lostEndGrace is how long a transaction's End may still run after the
// group wanted to call a rebalance callback (see onCallbackBlocked).
const lostEndGrace = time.Second

// onCallbackBlocked runs when the group wants to call a rebalance callback
// that a commit blocks (blockRebalances). If this member was evicted from
// the group (its session expired: a zombie coming back), End(TryCommit)
// waits for a heartbeat that never comes: the heartbeat loop has ended,
// and the lost callback that would wake End cannot run before the commit
// is over, so End would wait for closeTimeout. Therefore, until a callback
// runs, transactions are aborted rather than committed (End(TryAbort)
// sends no heartbeat), which costs nothing: the session aborts the
// transaction after a revocation anyway. An End already in progress that
// is still running lostEndGrace after the signal is cancelled: its
// transaction is aborted (or its outcome unknown) and Run rejoins with a
// new client, which aborts whatever is left open; an End that sees an
// ordinary rebalance finishes well within the grace.
func (r *Runtime) onCallbackBlocked(context.Context, *kgo.Client) {
	r.endMu.Lock()
	r.pendingCallback = true
	cancel := r.endCancel
	r.endMu.Unlock()
	if cancel != nil {
		time.AfterFunc(lostEndGrace, cancel) // a no-op once that End has returned
	}
}

// callbackRuns clears pendingCallback: a rebalance callback runs.
func (r *Runtime) callbackRuns() {
	r.endMu.Lock()
	r.pendingCallback = false
	r.endMu.Unlock()
}

// setTxnOffsets makes req commit offsets, the positions the tasks have
// processed up to, instead of franz-go's default: everything polled, which
// includes records still queued in the tasks. Partitions polled but not
// processed keep their committed offset (committed, franz-go's view), so
// that req is not emptied while anything was polled (and commitTransaction
// skips transactions with nothing in them): franz-go answers an empty
// commit itself with a version 0 response, takes the broker for one
// without KIP-447, and then blocks the group's callbacks, and the next
// End, for 500ms.
func setTxnOffsets(req *kmsg.TxnOffsetCommitRequest, offsets, committed map[string]map[int32]kgo.EpochOffset) {
	ids := map[string][16]byte{}
	all := map[string]map[int32]kgo.EpochOffset{}
	for _, t := range req.Topics {
		ids[t.Topic] = t.TopicID
		for _, p := range t.Partitions {
			if o, ok := committed[t.Topic][p.Partition]; ok {
				if all[t.Topic] == nil {
					all[t.Topic] = map[int32]kgo.EpochOffset{}
				}
				all[t.Topic][p.Partition] = o
			}
		}
	}
	for topic, ps := range offsets {
		if all[topic] == nil {
			all[topic] = map[int32]kgo.EpochOffset{}
		}
		maps.Copy(all[topic], ps)
	}
	req.Topics = req.Topics[:0]
	for topic, ps := range all {
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic, rt.TopicID = topic, ids[topic]
		for p, o := range ps {
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, o.Offset, o.Epoch
			rp.Metadata = &req.MemberID
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
}

// endsTransaction reports whether a produce error means the producer's
// transaction cannot commit: the producer was fenced (by an instance with
// the same transactional id, or by the broker aborting the transaction at
// its timeout, which bumps the epoch), its state was lost, or the broker
// asks for an abort.
func endsTransaction(err error) bool {
	for _, e := range []error{kerr.ProducerFenced, kerr.InvalidProducerEpoch, kerr.TransactionAbortable,
		kerr.InvalidProducerIDMapping, kerr.UnknownProducerID, kerr.InvalidTxnState,
		kerr.OutOfOrderSequenceNumber, kgo.ErrAborting} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// takeTxnErr returns and clears the error that keeps the open transaction
// from committing.
func (r *Runtime) takeTxnErr() error {
	r.txnErrMu.Lock()
	defer r.txnErrMu.Unlock()
	err := r.txnErr
	r.txnErr = nil
	return err
}
