// Package state holds the state stores processors use: the typed key-value
// store interface, typed views over byte stores through serdes, the storage
// engines, store errors and the restoration listener.
//
// A processor connected to a store (see stream.AddKeyValueStore and
// stream.WithStores) gets it from its context and uses its typed interface:
//
//	st, err := ctx.Store("counts")
//	if err != nil {
//		return err
//	}
//	counts, err := state.KeyValue[string, int64](st)
//	...
//	n, _, err := counts.Get(word) // 0, false, nil when there is none
//	err = counts.Put(word, n+1)
//	for word, n := range counts.Prefix("kafka") {
//		...
//	}
//	if err := counts.Err(); err != nil { // a range stopped early
//		return err
//	}
//
// # Stores and engines
//
// Each store of a topology has one instance per task, owned by that task's
// goroutine: stores are not safe for concurrent use, and need no locks.
// From the processor down, a write goes through:
//
//	KeyValueStore[K, V]  typed view: serdes, sticky errors
//	record cache         collapses the updates of a key until the next commit
//	changelog            sends every change to "<app-id>-<store>-changelog"
//	Engine               Persistent (Pebble) or InMemory
//
// The record cache and the changelog are per-store options (see
// stream.WithCachingDisabled and stream.WithLoggingDisabled). The [Engine]
// is [Persistent] by default: the instance's Pebble database, where a
// store's writes since the last commit stay in the task's batch and reach
// the database, with the changelog offsets they cover, in one atomic write
// at commit; after a restart only the changelog tail past that checkpoint is
// restored. [InMemory] stores keep a B-tree and are restored in full from
// their changelog whenever their task starts.
//
// # Typed views
//
// A [KeyValueStore] orders keys by their serialized bytes. [KeyValueStore.Get],
// [KeyValueStore.Put], [KeyValueStore.PutIfAbsent] and [KeyValueStore.Delete]
// work on one key; [KeyValueStore.Range], [KeyValueStore.ReverseRange],
// [KeyValueStore.Prefix] and [KeyValueStore.All] return [iter.Seq2]
// sequences. [KeyValue] turns the [Store] a processor is given into its typed
// interface, and [NewKeyValueStore] builds a typed view over any
// [BytesStore] with a key and a value [serde.Serde]. Values a view returns
// are the caller's: bytes are copied out of the engine before they are
// decoded.
//
// Views of cached stores also implement [FlushListener], through which the
// DSL's tables forward the collapsed changes ([Flushed]) a cache flush writes
// down.
//
// # Errors
//
// Every error of a typed view is a [*StoreError] naming the store, the
// operation and, when there is one, the serialized key; it unwraps to the
// serde's or the engine's error. Errors are sticky: the first one is kept
// as [Store.Err], a range that hits one stops early and leaves it there, and
// the task fails after the current record even if the processor ignored the
// error, so a broken store never lets processing continue. Sentinels:
// [ErrClosed] (a store used after its task closed), [ErrWrongType] (asking
// [KeyValue] for other types than the store has) and [ErrLocked] (another
// instance holds the state directory).
//
// # Restoration listener
//
// Before a task processes records, each of its logged stores is restored
// from its changelog. A [RestoreListener] set as stream.Config.RestoreListener
// is told when each changelog partition's restoration starts, after each
// batch and when it ends, as Kafka Streams' StateRestoreListener is. Its
// methods run on the restoring tasks' goroutines, concurrently for different
// tasks, and must be quick.
package state
