package state

import (
	"errors"
	"fmt"
	"iter"
)

var (
	// ErrLocked is wrapped by the error stream.App.Run returns when another
	// instance (in this process or another) has the state directory open.
	ErrLocked = errors.New("state: state directory is in use by another instance")
	// ErrClosed is wrapped by errors of stores used after their task closed.
	ErrClosed = errors.New("state: store closed")
	// ErrWrongType is wrapped by the error KeyValue returns when a store
	// has other key or value types than asked for.
	ErrWrongType = errors.New("state: store has other types")
)

// Engine says where a store keeps its data.
type Engine int

const (
	// Persistent stores live in the instance's Pebble database, survive
	// restarts and restore only the changelog tail past their checkpoint.
	// The default.
	Persistent Engine = iota
	// InMemory stores live in a B-tree in memory; a logged one is restored
	// in full from its changelog whenever its task starts.
	InMemory
)

// String returns "persistent" or "in-memory".
func (e Engine) String() string {
	if e == InMemory {
		return "in-memory"
	}
	return "persistent"
}

// BytesStore is a store of byte keys and values, ordered by key (bytewise).
// Get returns a copy the caller owns; Scan's key and value are valid only
// during the call of fn. A nil value is never stored: Put with a nil value
// is Delete.
type BytesStore interface {
	Name() string
	// Get returns the value of key, or nil when there is none.
	Get(key []byte) ([]byte, error)
	Put(key, value []byte) error
	Delete(key []byte) error
	// Scan calls fn for each entry with lower <= key < upper (nil bounds
	// are unbounded), in ascending key order or descending when reverse,
	// until fn returns false.
	Scan(lower, upper []byte, reverse bool, fn func(key, value []byte) bool) error
	// ApproximateNumEntries estimates the number of entries.
	ApproximateNumEntries() (int64, error)
}

// Store is a state store as a task hands it to processors. Every Store is
// also one of the typed store interfaces: use KeyValue to get a
// KeyValueStore.
type Store interface {
	Name() string
	// Err returns the first error any operation of the store hit (a value
	// its serde cannot decode, an engine failure), or nil. Errors are
	// sticky: once set, the task fails after the current record, so a
	// broken store never lets processing continue.
	Err() error
}

// KeyValueStore is a typed key-value store. Keys are ordered by their
// serialized bytes. Ranges are iter.Seq2 sequences; an error stops the
// sequence early and is reported by Err (and fails the task).
type KeyValueStore[K, V any] interface {
	Store
	// Get returns the value of key; ok is false when there is none.
	Get(key K) (value V, ok bool, err error)
	Put(key K, value V) error
	// PutIfAbsent stores value unless key has a value, and returns the
	// value that was there (ok true) or stores it (ok false).
	PutIfAbsent(key K, value V) (existing V, ok bool, err error)
	// Delete removes key and returns its old value (ok false: none).
	Delete(key K) (old V, ok bool, err error)
	// Range yields the entries with from <= key <= to in key order.
	Range(from, to K) iter.Seq2[K, V]
	// ReverseRange yields the same entries as Range in reverse order.
	ReverseRange(from, to K) iter.Seq2[K, V]
	// Prefix yields the entries whose serialized key starts with the
	// serialized prefix (meaningful for String and Bytes keys).
	Prefix(prefix K) iter.Seq2[K, V]
	// All yields every entry in key order.
	All() iter.Seq2[K, V]
	ApproximateNumEntries() (int64, error)
}

// KeyValue returns s as a KeyValueStore[K, V], or an error wrapping
// ErrWrongType naming the store when its types differ.
func KeyValue[K, V any](s Store) (KeyValueStore[K, V], error) {
	kv, ok := s.(KeyValueStore[K, V])
	if !ok {
		return nil, fmt.Errorf("%w: store %q is %T, not a KeyValueStore[%T, %T]", ErrWrongType, s.Name(), s, *new(K), *new(V))
	}
	return kv, nil
}

// StoreError is the error of a store operation: it names the store and,
// when one is involved, the key (serialized).
type StoreError struct {
	Store string
	Key   []byte // nil when no key is involved
	Op    string // "get", "put", "delete", "scan", "decode value", ...
	Err   error
}

// Error names the store, the operation and the key (when there is one).
func (e *StoreError) Error() string {
	if e.Key != nil {
		return fmt.Sprintf("state: store %q: %s key %q: %v", e.Store, e.Op, e.Key, e.Err)
	}
	return fmt.Sprintf("state: store %q: %s: %v", e.Store, e.Op, e.Err)
}

// Unwrap returns the underlying error.
func (e *StoreError) Unwrap() error { return e.Err }

// Flushed is a write of a cached store reaching the layer below it at a
// cache flush or eviction: the key's latest value (HasValue false: deleted)
// and the value it replaced there (HasOld false: none).
type Flushed[K, V any] struct {
	Key        K
	Value, Old V
	HasValue   bool
	HasOld     bool
	Timestamp  int64
}

// FlushListener is implemented by typed stores. SetFlushListener installs
// fn to be called for every write the record cache flushes, and reports
// whether the store is cached; when it is not, writes are not collapsed
// and the caller forwards each change itself.
type FlushListener[K, V any] interface {
	SetFlushListener(fn func(Flushed[K, V]) error) (cached bool)
}

// RestoreListener observes restoration (Kafka Streams'
// StateRestoreListener). Its methods are called from the restoring task's
// goroutine, concurrently for different tasks, and must be quick.
//
// The interface will not grow: events added later come as optional
// interfaces that a RestoreListener may also implement, found with a type
// assertion (as franz-go's hooks), so a new event never breaks an existing
// listener. RestoreSuspendedListener is the first.
type RestoreListener interface {
	// OnRestoreStart is called before restoring the changelog partition
	// from offset start up to end (exclusive).
	OnRestoreStart(topic string, partition int32, store string, start, end int64)
	// OnBatchRestored is called after each applied batch of n records
	// ending at offset batchEnd (exclusive).
	OnBatchRestored(topic string, partition int32, store string, batchEnd, n int64)
	// OnRestoreEnd is called when the store is restored, with the number
	// of records restored.
	OnRestoreEnd(topic string, partition int32, store string, total int64)
}

// RestoreSuspendedListener is an optional extension of RestoreListener
// (Kafka Streams' onRestoreSuspended, KIP-869). When the RestoreListener
// implements it, OnRestoreSuspended is called instead of OnRestoreEnd when
// a store's restoration stops before the changelog's end because its task
// is closed (the application stops, or the task moves to another
// instance), with the number of records restored until then. It is called
// from the restoring task's goroutine, as the other events.
type RestoreSuspendedListener interface {
	OnRestoreSuspended(topic string, partition int32, store string, total int64)
}
