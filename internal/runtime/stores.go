package runtime

import (
	"fmt"

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
