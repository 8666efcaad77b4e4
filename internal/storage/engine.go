package storage

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/btree"
	"github.com/runnel-dev/runnel/internal/keyspace"
	"github.com/runnel-dev/runnel/state"
)

// Compile-time interface checks.
var (
	_ state.BytesStore = (*pebbleStore)(nil)
	_ state.BytesStore = (*memStore)(nil)
)

// pebbleStore is a Persistent store: a key range of the DB, written through
// its task's pending indexed batch. Keys are the store's prefix followed by
// the user key.
type pebbleStore struct {
	ts      *TaskState
	name    string
	prefix  []byte // data key prefix of the store
	upper   []byte // keyspace.PrefixSuccessor(prefix)
	ckptKey []byte // the store's checkpoint key
	kbuf    []byte // scratch for full keys; Pebble copies keys it keeps
}

func newPebbleStore(ts *TaskState, name string) *pebbleStore {
	prefix := storePrefix(keyspaceData, ts.id, name)
	return &pebbleStore{
		ts:      ts,
		name:    name,
		prefix:  prefix,
		upper:   keyspace.PrefixSuccessor(prefix),
		ckptKey: storePrefix(keyspaceCheckpt, ts.id, name),
		kbuf:    slices.Clip(prefix),
	}
}

func (s *pebbleStore) engine() state.Engine { return state.Persistent }

// Name returns the store's name.
func (s *pebbleStore) Name() string { return s.name }

// check returns the error of using s now: task closed, or DB failed.
func (s *pebbleStore) check() error {
	if s.ts.closed {
		return fmt.Errorf("task %s: store %q: %w", s.ts.id, s.name, state.ErrClosed)
	}
	return s.ts.db.Err()
}

// key returns the full key of user key k, in s.kbuf.
func (s *pebbleStore) key(k []byte) []byte {
	s.kbuf = append(append(s.kbuf[:0], s.prefix...), k...)
	return s.kbuf
}

// Get returns a copy of the value of key (through the pending batch), or
// nil. An empty value is returned as an empty, non-nil slice.
func (s *pebbleStore) Get(key []byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	v, closer, err := s.ts.batch.Get(s.key(key))
	if err == pebble.ErrNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, s.ts.db.readErr(err)
	}
	out := make([]byte, len(v))
	copy(out, v)
	return out, closer.Close()
}

// Put writes key=value into the pending batch, which copies both.
func (s *pebbleStore) Put(key, value []byte) error {
	if value == nil {
		return s.Delete(key)
	}
	if err := s.check(); err != nil {
		return err
	}
	return s.ts.batch.Set(s.key(key), value, nil)
}

// Delete writes a deletion of key into the pending batch.
func (s *pebbleStore) Delete(key []byte) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.ts.batch.Delete(s.key(key), nil)
}

// bounds returns the full-key bounds of the user-key range [lower, upper),
// and false when the range is empty.
func (s *pebbleStore) bounds(lower, upper []byte) (lo, hi []byte, ok bool) {
	if lower != nil && upper != nil && bytes.Compare(lower, upper) >= 0 {
		return nil, nil, false
	}
	lo = append(slices.Clip(s.prefix), lower...)
	hi = s.upper
	if upper != nil {
		hi = append(slices.Clip(s.prefix), upper...)
	}
	return lo, hi, true
}

// Scan iterates the entries of [lower, upper) as the pending batch over the
// database shows them when Scan starts; writes fn makes are not seen.
func (s *pebbleStore) Scan(lower, upper []byte, reverse bool, fn func(key, value []byte) bool) (err error) {
	if err := s.check(); err != nil {
		return err
	}
	defer func() { err = s.ts.db.readErr(err) }()
	lo, hi, ok := s.bounds(lower, upper)
	if !ok {
		return nil
	}
	it, err := s.ts.batch.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := it.Close(); err == nil {
			err = cerr
		}
	}()
	n := len(s.prefix)
	first, next := it.First, it.Next
	if reverse {
		first, next = it.Last, it.Prev
	}
	for valid := first(); valid; valid = next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if !fn(it.Key()[n:], v) {
			return nil
		}
	}
	return it.Error()
}

// ApproximateNumEntries counts the store's entries by iterating over them:
// it is exact, and O(n).
func (s *pebbleStore) ApproximateNumEntries() (int64, error) {
	var n int64
	err := s.Scan(nil, nil, false, func(_, _ []byte) bool {
		n++
		return true
	})
	return n, err
}

// memDegree is the degree of the B-trees of InMemory stores.
const memDegree = 32

// memItem is an entry of an InMemory store. Both slices are owned by the
// tree and never modified: Put replaces the item.
type memItem struct{ key, value []byte }

func memLess(a, b memItem) bool { return bytes.Compare(a.key, b.key) < 0 }

// memStore is an InMemory store: a B-tree owned by its TaskState.
type memStore struct {
	ts   *TaskState
	name string
	tree *btree.BTreeG[memItem] // nil once the task closed
}

func (s *memStore) engine() state.Engine { return state.InMemory }

// Name returns the store's name.
func (s *memStore) Name() string { return s.name }

func (s *memStore) check() error {
	if s.tree == nil || s.ts.closed {
		return fmt.Errorf("task %s: store %q: %w", s.ts.id, s.name, state.ErrClosed)
	}
	return s.ts.db.Err()
}

// set stores a copy of key=value, or deletes key when value is nil.
func (s *memStore) set(key, value []byte) {
	if value == nil {
		s.tree.Delete(memItem{key: key})
		return
	}
	// One allocation for both; capacities are clipped so that neither can
	// grow into the other.
	buf := make([]byte, len(key)+len(value))
	copy(buf, key)
	copy(buf[len(key):], value)
	s.tree.ReplaceOrInsert(memItem{key: buf[:len(key):len(key)], value: buf[len(key):]})
}

// Get returns a copy of the value of key, or nil.
func (s *memStore) Get(key []byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	it, ok := s.tree.Get(memItem{key: key})
	if !ok {
		return nil, nil
	}
	return bytes.Clone(it.value), nil
}

// Put stores copies of key and value.
func (s *memStore) Put(key, value []byte) error {
	if err := s.check(); err != nil {
		return err
	}
	s.set(key, value)
	return nil
}

// Delete removes key.
func (s *memStore) Delete(key []byte) error {
	if err := s.check(); err != nil {
		return err
	}
	s.tree.Delete(memItem{key: key})
	return nil
}

// Scan iterates a copy-on-write clone of the tree, so fn may write to the
// store; its writes are not seen by the scan.
func (s *memStore) Scan(lower, upper []byte, reverse bool, fn func(key, value []byte) bool) error {
	if err := s.check(); err != nil {
		return err
	}
	if lower != nil && upper != nil && bytes.Compare(lower, upper) >= 0 {
		return nil
	}
	t := s.tree.Clone()
	visit := func(it memItem) bool { return fn(it.key, it.value) }
	switch {
	case !reverse && lower == nil && upper == nil:
		t.Ascend(visit)
	case !reverse && lower == nil:
		t.AscendLessThan(memItem{key: upper}, visit)
	case !reverse && upper == nil:
		t.AscendGreaterOrEqual(memItem{key: lower}, visit)
	case !reverse:
		t.AscendRange(memItem{key: lower}, memItem{key: upper}, visit)
	default:
		// Descend from upper (exclusive) down to lower (inclusive).
		from := func(it memItem) bool {
			if upper != nil && bytes.Compare(it.key, upper) >= 0 {
				return true // skip upper itself
			}
			if lower != nil && bytes.Compare(it.key, lower) < 0 {
				return false
			}
			return fn(it.key, it.value)
		}
		if upper == nil {
			t.Descend(from)
		} else {
			t.DescendLessOrEqual(memItem{key: upper}, from)
		}
	}
	return nil
}

// ApproximateNumEntries returns the exact number of entries, in O(1).
func (s *memStore) ApproximateNumEntries() (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	return int64(s.tree.Len()), nil
}
