package runtime

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/runnel-dev/runnel/stream/event"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// errAborted reports a transaction Kafka aborted (a rebalance, a fenced
// group generation, an abortable error): its records will be processed
// again from the last commit.
var errAborted = errors.New("stream: transaction aborted")

// txnSession is the exactly-once side of a Runtime (nil under
// at-least-once): franz-go's transactional session of the current client,
// and what decides whether the open transaction can commit. It lives as
// long as the Runtime; connect gives it each new client's session.
//
// The committer (Run's goroutine, under Runtime.mu) ends transactions.
// Produce promises report errors that doom the open transaction (setErr),
// and franz-go's group goroutine reports a rebalance callback waiting on a
// commit (callbackBlocked) or running (callbackRuns): those go through
// mu, a leaf lock.
type txnSession struct {
	// sess is the current client's session; set by connect before the
	// group can call back.
	sess *kgo.GroupTransactSession
	// lastOffsets are the offsets of the last committed transaction (nil
	// after an abort or a new client); endSoon says a rebalance happened
	// since, so the transaction must end (abort) even if empty. Guarded
	// by Runtime.mu.
	lastOffsets map[string]map[int32]kgo.EpochOffset
	endSoon     bool
	// rejoins counts the rejoins since the last committed transaction.
	// Run's goroutine only.
	rejoins int

	mu struct {
		sync.Mutex
		// err is the first produce error since the transaction began that
		// keeps it from committing (see endsTransaction).
		err error
		// pendingCallback is set while the group waits to call a
		// rebalance callback that a commit blocks, and endCancel cancels
		// the context of the End in progress (nil when none is); see
		// callbackBlocked.
		pendingCallback bool
		endCancel       context.CancelFunc
	}
}

// resetLocked starts over with a new client's session: nothing is
// committed on it yet, and the previous transaction's error is forgotten.
// REQUIRES: Runtime.mu held.
func (s *txnSession) resetLocked(sess *kgo.GroupTransactSession) {
	s.sess, s.lastOffsets, s.endSoon = sess, nil, false
	s.takeErr()
}

// setErr records a produce error that dooms the open transaction (the
// first one wins). Called by produce promises.
func (s *txnSession) setErr(err error) {
	s.mu.Lock()
	if s.mu.err == nil {
		s.mu.err = err
	}
	s.mu.Unlock()
}

// takeErr returns and clears the error that keeps the open transaction
// from committing.
func (s *txnSession) takeErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.mu.err
	s.mu.err = nil
	return err
}

// commitTransactionLocked commits the open transaction, which holds every
// record produced since the last commit (outputs and changelogs), with the
// consumed offsets and the group's generation (KIP-447: a zombie whose
// generation is stale cannot commit). The caller then applies the tasks'
// state batches: a crash in between leaves local state at the previous
// transaction, and restoration replays the committed changelog tail. It
// begins the next transaction before returning, so tasks always produce
// into an open one. It returns errAborted when Kafka aborted the
// transaction, and a *rejoinError when the producer cannot go on (fenced,
// or out of retries); committed is false when there was nothing to
// commit. REQUIRES: r.mu held, workers at the barrier, producer flushed.
func (r *Runtime) commitTransactionLocked(offsets map[string]map[int32]kgo.EpochOffset) (committed bool, err error) {
	s := r.txn
	txnErr := s.takeErr()
	if txnErr == nil && !s.endSoon && r.prod.sent.Load() == 0 && maps.EqualFunc(offsets, s.lastOffsets, maps.Equal) {
		// Nothing produced or processed since the last commit: an empty
		// transaction costs requests (and see setTxnOffsets).
		return false, nil
	}
	r.prod.sent.Store(0)
	// Until End succeeds, the next commit must not be skipped.
	s.lastOffsets, s.endSoon = nil, true
	abort := event.AbortInfo{Reason: event.AbortKafka}
	committed, err = s.end(offsets, r.cl.CommittedOffsets(), func(pending bool) kgo.TransactionEndTry {
		switch {
		case txnErr != nil:
			r.log.Warn("aborting the transaction: a record in it failed to produce", "err", txnErr)
			abort = event.AbortInfo{Reason: event.AbortProduceError, Err: txnErr}
			return kgo.TryAbort
		case pending:
			// The group is rebalancing, or has evicted this member: the
			// session would abort this transaction once the callback has
			// run, or End would wait for a heartbeat that never comes
			// (see callbackBlocked).
			r.log.Info("aborting the transaction: the group is rebalancing")
			abort.Reason = event.AbortRebalance
			return kgo.TryAbort
		}
		return kgo.TryCommit
	})
	if err != nil {
		return false, err
	}
	s.endSoon = false
	if !committed {
		r.events.TransactionAbort(abort)
		return false, errAborted
	}
	s.lastOffsets, s.rejoins = offsets, 0
	return true, nil
}

// end ends the open transaction, committing offsets (see setTxnOffsets;
// polled is franz-go's view of the consumed offsets) if try, given whether
// a rebalance callback is pending, says to, and begins the next one. Its
// errors are *rejoinError.
func (s *txnSession) end(offsets, polled map[string]map[int32]kgo.EpochOffset, try func(pending bool) kgo.TransactionEndTry) (committed bool, err error) {
	// End's context must not be cancelled while the commit is in flight
	// (its outcome would be unknown); closeTimeout bounds it instead.
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	s.mu.Lock()
	s.mu.endCancel = cancel
	pending := s.mu.pendingCallback
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.mu.endCancel = nil
		s.mu.Unlock()
	}()
	ctx = kgo.PreTxnCommitFnContext(ctx, func(req *kmsg.TxnOffsetCommitRequest) error {
		setTxnOffsets(req, offsets, polled)
		return nil
	})
	committed, err = s.sess.End(ctx, try(pending))
	if err != nil {
		return false, &rejoinError{fmt.Errorf("stream: ending the transaction: %w", err)}
	}
	if err := s.sess.Begin(); err != nil {
		return false, &rejoinError{fmt.Errorf("stream: beginning a transaction: %w", err)}
	}
	return committed, nil
}

// lostEndGrace is how long a transaction's End may still run after the
// group wanted to call a rebalance callback (see callbackBlocked).
const lostEndGrace = time.Second

// callbackBlocked runs (on franz-go's group goroutine) when the group
// wants to call a rebalance callback that a commit blocks
// (blockRebalances). If this member was evicted from the group (its
// session expired: a zombie coming back), End(TryCommit) waits for a
// heartbeat that never comes: the heartbeat loop has ended, and the lost
// callback that would wake End cannot run before the commit is over, so
// End would wait for closeTimeout. Therefore, until a callback runs,
// transactions are aborted rather than committed (End(TryAbort) sends no
// heartbeat), which costs nothing: the session aborts the transaction
// after a revocation anyway. An End already in progress that is still
// running lostEndGrace after the signal is cancelled: its transaction is
// aborted (or its outcome unknown) and Run rejoins with a new client,
// which aborts whatever is left open; an End that sees an ordinary
// rebalance finishes well within the grace.
func (s *txnSession) callbackBlocked(context.Context, *kgo.Client) {
	s.mu.Lock()
	s.mu.pendingCallback = true
	cancel := s.mu.endCancel
	s.mu.Unlock()
	if cancel != nil {
		time.AfterFunc(lostEndGrace, cancel) // a no-op once that End has returned
	}
}

// callbackRuns clears pendingCallback: a rebalance callback runs (or a new
// client has none pending).
func (s *txnSession) callbackRuns() {
	s.mu.Lock()
	s.mu.pendingCallback = false
	s.mu.Unlock()
}

// setTxnOffsets makes req commit offsets, the positions the tasks have
// processed up to, instead of franz-go's default: everything polled, which
// includes records still queued in the tasks. Partitions polled but not
// processed keep their committed offset (committed, franz-go's view), so
// that req is not emptied while anything was polled (and commitTransactionLocked
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
