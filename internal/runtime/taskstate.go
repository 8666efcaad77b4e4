package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/internal/storage"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/topology"
)

// CacheBytes returns the per-task record cache budget for a configured
// value: 0 means Kafka Streams' default, 10 MiB; a negative value disables
// the cache (0 bytes).
func CacheBytes(configured int64) int64 {
	switch {
	case configured == 0:
		return 10 << 20
	case configured < 0:
		return 0
	}
	return configured
}

// DefaultMaxUncommittedStateBytes is the default bound of a task's
// uncommitted state batch: past it the task asks for an early commit, so
// the batch (held in memory until the commit applies it) cannot grow
// without limit between commit intervals. (Kafka Streams, KIP-892:
// statestore.uncommitted.max.bytes, 64 MiB.)
const DefaultMaxUncommittedStateBytes = 64 << 20

// taskStore is one state store of a task.
type taskStore struct {
	spec  *graph.StoreSpec
	typed state.Store // what processors get
	// changelog is the full name of the changelog topic ("" when not
	// logged); written says the store wrote to it since the last commit.
	changelog string
	written   bool
	// position is the changelog offset the local store reflects (next
	// offset to restore from), -1 when unknown.
	position int64
}

// openStores builds the task's stores (engine, changelog, cache, typed
// view) in the order of the topology's stores.
func (t *Task) openStores(sub *graph.Subtopology) error {
	if len(sub.Stores) == 0 {
		return nil
	}
	if t.cfg.State == nil {
		return fmt.Errorf("task %s: the topology has state stores but no state database is open", t.cfg.ID)
	}
	t.state = t.cfg.State.Task(t.cfg.ID.String())
	if t.cfg.CacheMaxBytes > 0 {
		t.cache = storage.NewCache(t.cfg.CacheMaxBytes, &t.recordTime)
	}
	t.stores = make(map[string]*taskStore, len(sub.Stores))
	for _, spec := range sub.Stores {
		st := &taskStore{spec: spec, position: -1}
		s := t.state.Open(spec.Name, spec.Engine)
		if spec.Logged {
			st.changelog = t.TopicName(graph.ChangelogTopic(spec.Name))
			s = storage.Logged(s, func(key, value []byte) error { return t.logChange(st, key, value) })
		}
		if spec.Caching && t.cache != nil {
			s = t.cache.Wrap(s)
		}
		st.typed = spec.Wrap(s)
		t.stores[spec.Name] = st
		t.storeList = append(t.storeList, st)
	}
	return nil
}

// logChange sends a store write to the store's changelog partition (the
// task's partition), with the timestamp of the record being processed.
func (t *Task) logChange(st *taskStore, key, value []byte) error {
	// The producer keeps the slices until delivery; the store's caller
	// may reuse them.
	buf := make([]byte, len(key)+len(value))
	k, v := buf[:len(key):len(key)], buf[len(key):]
	copy(k, key)
	copy(v, value)
	if value == nil {
		v = nil
	}
	st.written = true
	return t.Send(graph.OutRecord{Topic: st.changelog, Partition: t.cfg.ID.Partition, Key: k, Value: v, Timestamp: t.recordTime})
}

// Store implements graph.TaskContext.
func (t *Task) Store(name string) (state.Store, error) {
	st, ok := t.stores[name]
	if !ok {
		return nil, fmt.Errorf("task %s: no state store %q in this sub-topology", t.cfg.ID, name)
	}
	return st.typed, nil
}

// handleError passes an error raised outside the processing of an input
// record's own path (a punctuator, or nodes downstream of a record cache
// flush or eviction) to the processing error handler. It returns nil when
// the handler says to continue (logged and counted as skipped), else the
// *topology.ProcessingError to fail with.
func (t *Task) handleError(err error, what string) error {
	if errors.As(err, new(*handledError)) {
		return err // the handler already said to fail
	}
	err = t.processingError(err, t.inRecord)
	var pe *topology.ProcessingError
	errors.As(err, &pe)
	ectx := topology.ErrorContext{Task: t.cfg.ID, Node: pe.Node, Record: pe.Record, Valid: pe.Valid, Timestamp: t.recordTime}
	if t.cfg.OnProcessingError == nil || t.cfg.OnProcessingError(ectx, err) != topology.Continue {
		return &handledError{err}
	}
	t.log.Warn(what+" failed, continuing", "node", pe.Node, "err", err)
	t.RecordSkipped("processing")
	return nil
}

// handledError is an error the processing error handler has already said
// to fail on. It may travel back up through a store (an eviction inside a
// Put) and the nodes above it; the task then fails with it without asking
// the handler again.
type handledError struct{ err error }

func (e *handledError) Error() string { return e.err.Error() }

func (e *handledError) Unwrap() error { return e.err }

// HandleFlushError implements graph.TaskContext.
func (t *Task) HandleFlushError(err error) error { return t.handleError(err, "cache flush") }

// storeErr returns the first sticky store error: a broken store fails the
// task whatever the processor did with the error.
func (t *Task) storeErr() error {
	for _, st := range t.storeList {
		if err := st.typed.Err(); err != nil {
			return fmt.Errorf("task %s: %w", t.cfg.ID, err)
		}
	}
	return nil
}

// FlushCache writes the record cache down to the stores (and their
// changelogs), forwarding the collapsed changes downstream. The runtime
// calls it at every commit, before flushing the producer.
func (t *Task) FlushCache() error {
	if t.cache == nil {
		return nil
	}
	t.current, t.inRecord = topology.RecordMetadata{}, false
	if err := t.cache.Flush(); err != nil {
		return fmt.Errorf("task %s: flushing the record cache: %w", t.cfg.ID, err)
	}
	return t.storeErr()
}

// CommitState makes the task's store writes durable: the pending batch
// and the changelog checkpoints, in one atomic write. REQUIRES: the cache
// was flushed and every changelog record the task sent was acknowledged,
// so the checkpoints cover exactly the writes in the batch.
func (t *Task) CommitState() error {
	if t.state == nil {
		return nil
	}
	checkpoints := map[string]int64{}
	for _, st := range t.storeList {
		if st.written {
			last, ok := t.cfg.Producer.LastOffset(st.changelog, t.cfg.ID.Partition)
			if !ok {
				return fmt.Errorf("task %s: store %q: no acknowledged offset for its changelog writes", t.cfg.ID, st.spec.Name)
			}
			st.position, st.written = max(st.position, last+1), false
		}
		if st.position >= 0 { // Commit ignores in-memory stores' checkpoints
			checkpoints[st.spec.Name] = st.position
		}
	}
	if err := t.state.Commit(checkpoints); err != nil {
		return fmt.Errorf("task %s: committing state: %w", t.cfg.ID, err)
	}
	t.commitAsked = false
	return nil
}

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
	err = cl.Read(ctx, topic, p, from, end, func(writes []storage.Write, next int64) error {
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

// closeState drops the uncommitted state (the runtime commits first on a
// clean close) and closes the task's stores.
func (t *Task) closeState() error {
	if t.state == nil {
		return nil
	}
	err := t.state.Close()
	t.state = nil
	return err
}
