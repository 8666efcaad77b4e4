package storage

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/btree"
	"github.com/runnel-dev/runnel/state"
)

// Write is one changelog record to apply during restoration: Value nil
// deletes Key.
type Write struct {
	Key, Value []byte
}

// TaskState is the state of one task: its stores, the batch of their
// uncommitted writes and their checkpoints. It comes from DB.Task.
//
// A TaskState and its stores are not safe for concurrent use: they belong
// to the task's goroutine.
//
// Writes to Persistent stores go into one pending Pebble batch per task;
// reads see the batch over the committed database. Commit makes the batch
// and the stores' checkpoints durable in one atomic write; Close drops
// it, leaving the last committed state. InMemory stores are not
// transactional: their writes apply at once and are gone when the
// TaskState closes, so a logged in-memory store is always restored in full.
type TaskState struct {
	db     *DB
	id     string
	batch  *pebble.Batch // pending writes (indexed); nil until a state.Persistent store opens
	rbatch *pebble.Batch // reused by Restore; nil until first used
	stores map[string]taskStore
	closed bool
}

// taskStore is a store engine of a TaskState.
type taskStore interface {
	state.BytesStore
	engine() state.Engine
}

func newTaskState(db *DB, id string) *TaskState {
	return &TaskState{db: db, id: id, stores: make(map[string]taskStore)}
}

// Open returns the store name of the task, kept by engine (see Engine).
// Opening a name again returns the same store. Open has no I/O: a
// Persistent store sees whatever the database holds for it.
//
// The store is the bottom layer: wrap it with Logged, a Cache and
// NewKeyValueStore. Its operations return errors wrapping ErrClosed once
// the TaskState is closed, and ErrFailed once the DB failed.
//
// Open panics when the TaskState is closed or name is open with another
// engine: both are bugs of the caller.
func (ts *TaskState) Open(name string, engine state.Engine) state.BytesStore {
	if ts.closed {
		panic(fmt.Sprintf("state: task %s: Open(%q) after Close", ts.id, name))
	}
	if s, ok := ts.stores[name]; ok {
		if s.engine() != engine {
			panic(fmt.Sprintf("state: task %s: store %q is open as %s, not %s", ts.id, name, s.engine(), engine))
		}
		return s
	}
	var s taskStore
	switch engine {
	case state.InMemory:
		s = &memStore{ts: ts, name: name, tree: btree.NewG(memDegree, memLess)}
	default:
		if ts.batch == nil {
			ts.batch = ts.db.pdb.NewIndexedBatch()
		}
		s = newPebbleStore(ts, name)
	}
	ts.stores[name] = s
	return s
}

// store returns the open store name, for op.
func (ts *TaskState) store(op, name string) (taskStore, error) {
	if ts.closed {
		return nil, fmt.Errorf("state: task %s: %s store %q: %w", ts.id, op, name, state.ErrClosed)
	}
	if err := ts.db.Err(); err != nil {
		return nil, err
	}
	s, ok := ts.stores[name]
	if !ok {
		return nil, fmt.Errorf("state: task %s: %s store %q: store not open", ts.id, op, name)
	}
	return s, nil
}

// Checkpoint returns the committed changelog offset of store, the next
// offset to restore from; ok is false when the store has none (never
// committed, or wiped). InMemory stores never have one. A checkpoint that
// cannot be decoded is an error wrapping ErrBadCheckpoint: wipe the store
// and restore it in full.
func (ts *TaskState) Checkpoint(store string) (offset int64, ok bool, err error) {
	s, err := ts.store("checkpoint of", store)
	if err != nil {
		return 0, false, err
	}
	ps, isPebble := s.(*pebbleStore)
	if !isPebble {
		return 0, false, nil
	}
	v, closer, err := ts.db.pdb.Get(ps.ckptKey)
	if err == pebble.ErrNotFound {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("state: task %s: read checkpoint of store %q: %w", ts.id, store, ts.db.readErr(err))
	}
	defer closer.Close()
	off, err := decodeCheckpoint(v)
	if err != nil {
		return 0, false, fmt.Errorf("state: task %s: checkpoint of store %q: %w", ts.id, store, err)
	}
	return off, true, nil
}

// Wipe deletes every entry of store and its checkpoint, durably, and drops
// the store's uncommitted writes from the pending batch (the writes of the
// task's other stores stay pending).
func (ts *TaskState) Wipe(store string) error {
	s, err := ts.store("wipe", store)
	if err != nil {
		return err
	}
	switch s := s.(type) {
	case *memStore:
		s.tree.Clear(false)
		return nil
	case *pebbleStore:
		if err := ts.dropPending(s.prefix, s.upper); err != nil {
			return fmt.Errorf("state: task %s: wipe store %q: %w", ts.id, store, err)
		}
		b := ts.db.pdb.NewBatch()
		defer b.Close()
		if err := b.DeleteRange(s.prefix, s.upper, nil); err != nil {
			return fmt.Errorf("state: task %s: wipe store %q: %w", ts.id, store, err)
		}
		if err := b.Delete(s.ckptKey, nil); err != nil {
			return fmt.Errorf("state: task %s: wipe store %q: %w", ts.id, store, err)
		}
		if err := ts.db.apply(b, pebble.Sync); err != nil {
			return fmt.Errorf("state: task %s: wipe store %q: %w", ts.id, store, err)
		}
		return nil
	}
	panic("unreachable")
}

// dropPending replaces the pending batch by a copy without the writes to
// keys in [lower, upper). (A range deletion in the batch would also delete
// what Restore writes later, when the batch commits.)
func (ts *TaskState) dropPending(lower, upper []byte) error {
	if ts.batch.Empty() {
		return nil
	}
	nb := ts.db.pdb.NewIndexedBatch()
	r := ts.batch.Reader()
	for {
		kind, key, value, ok, err := r.Next()
		if err != nil {
			nb.Close()
			return err
		}
		if !ok {
			break
		}
		if bytes.Compare(key, lower) >= 0 && bytes.Compare(key, upper) < 0 {
			continue
		}
		switch kind {
		case pebble.InternalKeyKindSet:
			err = nb.Set(key, value, nil)
		case pebble.InternalKeyKindDelete:
			err = nb.Delete(key, nil)
		default:
			err = fmt.Errorf("unexpected %s in the pending batch", kind)
		}
		if err != nil {
			nb.Close()
			return err
		}
	}
	ts.batch.Close()
	ts.batch = nb
	return nil
}

// Restore applies changelog records to store (a nil Value deletes its Key)
// and, for a Persistent store, sets its checkpoint to next (the offset after
// the last record) in the same atomic write. Restoration writes are not
// synced: the next Commit's sync makes them durable, and a crash before it
// loses the records together with the checkpoint, so restoration resumes
// from the older one.
//
// Restore writes below the pending batch: a store is restored before its
// task's processors are initialized or process records, so the batch is
// empty.
func (ts *TaskState) Restore(store string, writes []Write, next int64) error {
	s, err := ts.store("restore", store)
	if err != nil {
		return err
	}
	switch s := s.(type) {
	case *memStore:
		for _, w := range writes {
			s.set(w.Key, w.Value)
		}
		return nil
	case *pebbleStore:
		if next < 0 {
			return fmt.Errorf("state: task %s: restore store %q: negative checkpoint %d", ts.id, store, next)
		}
		if ts.rbatch == nil {
			ts.rbatch = ts.db.pdb.NewBatch()
		}
		if err := ts.restore(s, writes, next); err != nil {
			return fmt.Errorf("state: task %s: restore store %q: %w", ts.id, store, err)
		}
		return nil
	}
	panic("unreachable")
}

// restore writes the records and checkpoint of s in one unsynced batch.
func (ts *TaskState) restore(s *pebbleStore, writes []Write, next int64) error {
	b := ts.rbatch
	key := s.kbuf[:0]
	for _, w := range writes {
		key = append(append(key[:0], s.prefix...), w.Key...)
		var err error
		if w.Value == nil {
			err = b.Delete(key, nil)
		} else {
			err = b.Set(key, w.Value, nil)
		}
		if err != nil {
			b.Reset()
			return err
		}
	}
	s.kbuf = key
	if err := b.Set(s.ckptKey, encodeCheckpoint(next), nil); err != nil {
		b.Reset()
		return err
	}
	if err := ts.db.apply(b, pebble.NoSync); err != nil {
		// Pebble forbids reusing a batch whose commit failed.
		_ = b.Close()
		ts.rbatch = nil
		return err
	}
	b.Reset()
	return nil
}

// PendingBytes returns the size in bytes of the uncommitted batch (0 when
// there are no uncommitted writes). Callers commit when it grows large.
func (ts *TaskState) PendingBytes() int {
	if ts.batch == nil || ts.batch.Empty() {
		return 0
	}
	return ts.batch.Len()
}

// Commit durably applies the pending batch together with the given
// checkpoints (store name to the changelog offset its data reflects) in ONE
// atomic, synced Pebble write, then starts an empty batch. Checkpoints of
// InMemory stores are ignored; naming a store that is not open is an error.
//
// On error nothing is applied (at least durably: see ErrFailed) and the
// error is returned; the task must fail. Commit with no pending writes and
// no checkpoints does nothing.
func (ts *TaskState) Commit(checkpoints map[string]int64) error {
	if ts.closed {
		return fmt.Errorf("state: task %s: commit: %w", ts.id, state.ErrClosed)
	}
	if err := ts.db.Err(); err != nil {
		return err
	}
	// Validate everything before touching the batch.
	names := slices.Sorted(maps.Keys(checkpoints))
	for _, name := range names {
		s, ok := ts.stores[name]
		if !ok {
			return fmt.Errorf("state: task %s: commit: checkpoint of store %q: store not open", ts.id, name)
		}
		if off := checkpoints[name]; off < 0 && s.engine() == state.Persistent {
			return fmt.Errorf("state: task %s: commit: checkpoint of store %q: negative offset %d", ts.id, name, off)
		}
	}
	if ts.batch == nil {
		return nil // no state.Persistent store: nothing to commit
	}
	for _, name := range names {
		if ps, ok := ts.stores[name].(*pebbleStore); ok {
			if err := ts.batch.Set(ps.ckptKey, encodeCheckpoint(checkpoints[name]), nil); err != nil {
				return fmt.Errorf("state: task %s: commit: %w", ts.id, err)
			}
		}
	}
	if ts.batch.Empty() {
		return nil
	}
	if err := ts.db.apply(ts.batch, pebble.Sync); err != nil {
		return fmt.Errorf("state: task %s: commit: %w", ts.id, err)
	}
	ts.batch.Reset()
	return nil
}

// Close discards the uncommitted writes, drops the InMemory stores and
// releases the task id: DB.Task may open it again. Afterwards the task's
// stores return errors wrapping ErrClosed. Closing twice does nothing.
func (ts *TaskState) Close() error {
	if ts.closed {
		return nil
	}
	ts.closed = true
	if ts.batch != nil {
		_ = ts.batch.Close()
		ts.batch = nil
	}
	if ts.rbatch != nil {
		_ = ts.rbatch.Close()
		ts.rbatch = nil
	}
	for _, s := range ts.stores {
		if m, ok := s.(*memStore); ok {
			m.tree = nil
		}
	}
	ts.db.closeTask(ts.id)
	return nil
}
