package state

import (
	"bytes"
	"errors"
	"iter"

	"github.com/runnel-dev/runnel/internal/keyspace"
	"github.com/runnel-dev/runnel/serde"
)

// errNilKey is the error of a key whose serde serialized it to nil (Kafka's
// null): stores have no null keys.
var errNilKey = errors.New("key serialized to null")

// NewKeyValueStore returns a typed view of s: keys and values go through ks
// and vs, with s's name as the topic. The view implements
// KeyValueStore[K, V] and FlushListener[K, V].
//
// Keys are ordered by their serialized bytes. Every error is a *StoreError
// naming the store (and the serialized key when one is involved), and the
// first one is kept as the sticky Err. Values returned by Get and yielded by
// ranges are the serde's to own: bytes are copied out of the store before
// they are deserialized, so serde.Bytes results stay valid.
//
// The view is not safe for concurrent use. SetFlushListener reports cached
// (and installs the listener) only when s is behind a record cache; otherwise
// every write goes down at once and the caller forwards changes itself.
func NewKeyValueStore[K, V any](s BytesStore, ks serde.Serde[K], vs serde.Serde[V]) KeyValueStore[K, V] {
	return &kvStore[K, V]{s: s, name: s.Name(), ks: ks, vs: vs}
}

// kvStore is the typed view NewKeyValueStore returns.
type kvStore[K, V any] struct {
	s    BytesStore
	name string
	ks   serde.Serde[K]
	vs   serde.Serde[V]
	err  error // the first error, sticky
}

var (
	_ KeyValueStore[string, int64] = (*kvStore[string, int64])(nil)
	_ FlushListener[string, int64] = (*kvStore[string, int64])(nil)
)

// Name returns the store's name.
func (s *kvStore[K, V]) Name() string { return s.name }

// Err returns the first error of any operation, or nil.
func (s *kvStore[K, V]) Err() error { return s.err }

// fail wraps err in a *StoreError (unless it is one), keeps the first as
// the sticky error, and returns it. key is copied.
func (s *kvStore[K, V]) fail(op string, key []byte, err error) error {
	se, ok := err.(*StoreError)
	if !ok {
		se = &StoreError{Store: s.name, Key: bytes.Clone(key), Op: op, Err: err}
	}
	if s.err == nil {
		s.err = se
	}
	return se
}

// key serializes k.
func (s *kvStore[K, V]) key(k K) ([]byte, error) {
	kb, err := s.ks.Serialize(s.name, k)
	if err != nil {
		return nil, s.fail("serialize key", nil, err)
	}
	if kb == nil {
		return nil, s.fail("serialize key", nil, errNilKey)
	}
	return kb, nil
}

// get returns the value of serialized key kb.
func (s *kvStore[K, V]) get(kb []byte) (v V, ok bool, err error) {
	vb, err := s.s.Get(kb)
	if err != nil {
		return v, false, s.fail("get", kb, err)
	}
	if vb == nil {
		return v, false, nil
	}
	if v, err = s.vs.Deserialize(s.name, vb); err != nil {
		return v, false, s.fail("decode value", kb, err)
	}
	return v, true, nil
}

// Get returns the value of key; ok is false when there is none.
func (s *kvStore[K, V]) Get(key K) (V, bool, error) {
	kb, err := s.key(key)
	if err != nil {
		var zero V
		return zero, false, err
	}
	return s.get(kb)
}

// Put stores value under key. A value the serde serializes to nil (null)
// deletes key.
func (s *kvStore[K, V]) Put(key K, value V) error {
	kb, err := s.key(key)
	if err != nil {
		return err
	}
	return s.put(kb, value)
}

// put stores value under the serialized key kb.
func (s *kvStore[K, V]) put(kb []byte, value V) error {
	vb, err := s.vs.Serialize(s.name, value)
	if err != nil {
		return s.fail("serialize value", kb, err)
	}
	if err := s.s.Put(kb, vb); err != nil {
		return s.fail("put", kb, err)
	}
	return nil
}

// PutIfAbsent stores value unless key has one, which it returns (ok true).
func (s *kvStore[K, V]) PutIfAbsent(key K, value V) (V, bool, error) {
	kb, err := s.key(key)
	if err != nil {
		var zero V
		return zero, false, err
	}
	existing, ok, err := s.get(kb)
	if err != nil || ok {
		return existing, ok, err
	}
	return existing, false, s.put(kb, value)
}

// Delete removes key and returns the value it had (ok false: none).
func (s *kvStore[K, V]) Delete(key K) (V, bool, error) {
	kb, err := s.key(key)
	if err != nil {
		var zero V
		return zero, false, err
	}
	old, ok, err := s.get(kb)
	if err != nil {
		return old, false, err
	}
	if err := s.s.Delete(kb); err != nil {
		return old, false, s.fail("delete", kb, err)
	}
	return old, ok, nil
}

// Range yields the entries with from <= key <= to, in key order.
func (s *kvStore[K, V]) Range(from, to K) iter.Seq2[K, V] {
	return s.rangeSeq(from, to, false)
}

// ReverseRange yields the entries of Range(from, to) in reverse order.
func (s *kvStore[K, V]) ReverseRange(from, to K) iter.Seq2[K, V] {
	return s.rangeSeq(from, to, true)
}

func (s *kvStore[K, V]) rangeSeq(from, to K, reverse bool) iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		lo, err := s.key(from)
		if err != nil {
			return
		}
		hi, err := s.key(to)
		if err != nil {
			return
		}
		// Copies: the serde may return the caller's memory. The upper bound
		// is exclusive: to followed by 0x00 is the smallest key after to.
		b := make([]byte, len(lo)+len(hi)+1)
		lower := b[:copy(b, lo):len(lo)]
		upper := b[len(lo):]
		copy(upper, hi)
		s.scan(lower, upper, reverse, yield)
	}
}

// Prefix yields the entries whose serialized key starts with the serialized
// prefix, in key order.
func (s *kvStore[K, V]) Prefix(prefix K) iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		p, err := s.key(prefix)
		if err != nil {
			return
		}
		lower := bytes.Clone(p)
		s.scan(lower, keyspace.PrefixSuccessor(lower), false, yield)
	}
}

// All yields every entry in key order.
func (s *kvStore[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		s.scan(nil, nil, false, yield)
	}
}

// scan yields the decoded entries of the byte range; an error stops it and
// is kept as the sticky Err.
func (s *kvStore[K, V]) scan(lower, upper []byte, reverse bool, yield func(K, V) bool) {
	failed := false
	err := s.s.Scan(lower, upper, reverse, func(k, v []byte) bool {
		// Scan's memory is valid only during this call, and serdes such as
		// serde.Bytes alias their input: copy key and value (in one
		// allocation) before decoding.
		b := make([]byte, len(k)+len(v))
		kb := b[:copy(b, k):len(k)]
		vb := b[len(k):]
		copy(vb, v)
		key, err := s.ks.Deserialize(s.name, kb)
		if err != nil {
			s.fail("decode key", kb, err)
			failed = true
			return false
		}
		val, err := s.vs.Deserialize(s.name, vb)
		if err != nil {
			s.fail("decode value", kb, err)
			failed = true
			return false
		}
		return yield(key, val)
	})
	if err != nil && !failed {
		s.fail("scan", nil, err)
	}
}

// ApproximateNumEntries estimates the number of entries (see the engines:
// exact and O(n) for Persistent stores, O(1) for InMemory ones; a cache's
// unwritten entries are not counted).
func (s *kvStore[K, V]) ApproximateNumEntries() (int64, error) {
	n, err := s.s.ApproximateNumEntries()
	if err != nil {
		return 0, s.fail("approximate num entries", nil, err)
	}
	return n, nil
}

// cachedBytesStore is a byte store behind a record cache: SetListener
// installs the function the cache calls for every write it flushes or
// evicts to the store below it.
type cachedBytesStore interface {
	SetListener(fn func(key, value, old []byte, ts int64) error)
}

// SetFlushListener installs fn on the cache of the store, decoding each
// flushed write, and reports true; it does nothing and reports false when
// the store is not behind a cache. Decode errors are returned to
// the flush and kept as the sticky Err; fn's errors are returned as they
// are.
func (s *kvStore[K, V]) SetFlushListener(fn func(Flushed[K, V]) error) (cached bool) {
	cs, ok := s.s.(cachedBytesStore)
	if !ok {
		return false
	}
	cs.SetListener(func(key, value, old []byte, ts int64) error {
		// One copy of all three: listeners may keep what they decode.
		b := make([]byte, 0, len(key)+len(value)+len(old))
		b = append(b, key...)
		kb := b[:len(key):len(key)]
		f := Flushed[K, V]{Timestamp: ts}
		var err error
		if f.Key, err = s.ks.Deserialize(s.name, kb); err != nil {
			return s.fail("decode key", kb, err)
		}
		if value != nil {
			b = append(b, value...)
			if f.Value, err = s.vs.Deserialize(s.name, b[len(kb):len(b):len(b)]); err != nil {
				return s.fail("decode value", kb, err)
			}
			f.HasValue = true
		}
		if old != nil {
			start := len(b)
			b = append(b, old...)
			if f.Old, err = s.vs.Deserialize(s.name, b[start:]); err != nil {
				return s.fail("decode old value", kb, err)
			}
			f.HasOld = true
		}
		return fn(f)
	})
	return true
}
