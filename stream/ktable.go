package stream

import (
	"fmt"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/topology"
)

// KTable is a typed table: for each key its latest value, updated by a
// stream of changes. Tables read with Table and the results of aggregations
// are materialized in a state store; Filter, FilterNot and TableMapValues
// compute their rows from the parent table's changes and have no store of
// their own. Like KStream, a KTable is a cheap handle on a node of its
// Builder.
//
// Table operators pass each update downstream as a change: the key's new
// value (none for a deleted row) and its old value (none for a new row), so
// an operator can retract what it derived from the old row.
type KTable[K, V any] struct {
	b    *Builder
	node string
}

// change is an update of a table row (Kafka Streams' Change): the new and
// the old value of the key, each possibly absent (Kafka's null).
type change[V any] struct {
	New, Old       V
	HasNew, HasOld bool
}

// changes returns the table's node as the stream of its changes.
func (t KTable[K, V]) changes() pipe[K, change[V]] {
	return pipe[K, change[V]]{b: t.b, node: t.node}
}

// tableOf returns the table whose changes s carries.
func tableOf[K, V any](s pipe[K, change[V]]) KTable[K, V] {
	return KTable[K, V]{b: s.b, node: s.node}
}

// Table reads a topic as a table (Kafka Streams' StreamsBuilder.table): each
// record is the new value of its key, and a record with a null value (a
// tombstone) deletes the key. Records with a null key are dropped and
// counted (reason "null_key"). The table is materialized in a key-value
// store that processes its own changes before they go downstream.
//
// Unlike Kafka Streams' table(topic) without Materialized, which keeps no
// store and forwards every record, Runnel's table is always materialized
// and, by default, cached: updates of a key collapse until the next commit,
// and a tombstone for a key the table does not hold produces nothing
// downstream. WithCachingDisabled forwards every update (and such
// tombstones as deletions of nothing).
//
// Options: Named (the table source processor gets the name, its source
// node the name plus "-source"; default KTABLE-SOURCE-<n> and
// KSTREAM-SOURCE-<n>), WithOffsetReset, Materialized (default store name
// "<topic>-STATE-STORE-<n>") and the store options WithInMemoryStore,
// WithLoggingDisabled, WithChangelogConfigs, WithCachingDisabled; for a
// timestamp extractor, use WithTimestampExtractor(b, fn).Table. As in Kafka
// Streams without topology optimization, the store is logged to its own
// changelog topic, not restored from topic.
func Table[K, V any](b *Builder, topic string, keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...TableOption) KTable[K, V] {
	return table(b, topic, keySerde, valueSerde, nil, opts)
}

// table adds the nodes of Table, with the timestamp extractor extract (nil:
// the default).
func table[K, V any](b *Builder, topic string, ks serde.Serde[K], vs serde.Serde[V], extract TimestampExtractor[K, V], opts []TableOption) KTable[K, V] {
	o := optionsOf(opts)
	store, generated := b.storeName(o, topic+"-")
	src := addSource(b, b.suffixed(o.name, "-source", "SOURCE"), []string{topic}, nil, ks, vs, o.reset, extract, true)
	name := b.tableNodeName(o, "SOURCE")
	return tableOf(addStateful(src, name, store, vs, b.addStore(name, fmt.Sprintf("node %q", name), dslStore(store, generated, o, ks, vs)),
		func(_ graph.TaskContext, table *tableStore[K, V]) receiver[K, V] {
			return &tableSourceNode[K, V]{name: name, table: table}
		}))
}

// addStateful adds a processor named name under s that keeps a table in
// store (values encoded by vs), connected to it when ok (false: the store
// was rejected and Build fails anyway). newNode builds the node instance
// around the task's store.
func addStateful[K, V, VR any](s pipe[K, V], name, store string, vs serde.Serde[VR], ok bool, newNode func(tc graph.TaskContext, table *tableStore[K, VR]) receiver[K, V]) pipe[K, change[VR]] {
	var stores []string
	if ok {
		stores = []string{store}
	}
	s.b.add(&graph.Node{
		Name: name, Kind: graph.ProcessorKind, Parents: []string{s.node}, Stores: stores,
		Make: func(tc graph.TaskContext, children []graph.Child) (any, error) {
			to, err := receivers[K, change[VR]](children)
			if err != nil {
				return nil, err
			}
			table, err := openTableStore(tc, store, vs, to)
			if err != nil {
				return nil, &topology.NodeError{Node: name, Err: err}
			}
			return newNode(tc, table), nil
		},
	})
	return pipe[K, change[VR]]{b: s.b, node: name}
}

// Filter keeps the rows for which pred returns true (Kafka Streams'
// KTable.filter): a row that stops matching is deleted downstream, and
// pred sees both the new and the old value of every update. The result is
// not materialized. Options: Named (default KTABLE-FILTER-<n>).
//
// Runnel always filters as Kafka Streams does when old values are sent
// (downstream of it there is a table aggregation or a materialization): an
// update is dropped when neither its new nor its old value matches. Kafka
// Streams' plain filter().toStream() instead emits a tombstone for every
// update that does not match, including rows that never matched; the
// resulting table is the same.
func (t KTable[K, V]) Filter(pred func(key K, value V) bool, opts ...Option) KTable[K, V] {
	return t.filter(pred, true, opts)
}

// FilterNot drops the rows for which pred returns true; see Filter.
func (t KTable[K, V]) FilterNot(pred func(key K, value V) bool, opts ...Option) KTable[K, V] {
	return t.filter(pred, false, opts)
}

// filter follows Kafka Streams' KTableFilter with old values sent: the new
// and the old value each pass only if they match, and an update with
// neither left is dropped.
func (t KTable[K, V]) filter(pred func(K, V) bool, keep bool, opts []Option) KTable[K, V] {
	name := t.b.tableNodeName(optionsOf(opts), "FILTER")
	t.b.checkNil(name, "predicate", pred)
	return tableOf(child(t.changes(), name, false, func(_ graph.TaskContext, to []receiver[K, change[V]]) any {
		return &opNode[K, change[V], K, change[V]]{name: name, to: to, fn: func(rec topology.Record[K, change[V]], to []receiver[K, change[V]]) error {
			in, out := rec.Value, change[V]{}
			if in.HasNew && pred(rec.Key, in.New) == keep {
				out.New, out.HasNew = in.New, true
			}
			if in.HasOld && pred(rec.Key, in.Old) == keep {
				out.Old, out.HasOld = in.Old, true
			}
			if !out.HasNew && !out.HasOld {
				return nil
			}
			rec.Value = out
			return forward(to, rec)
		}}
	}))
}

// TableMapValues replaces the value of every row (Kafka Streams'
// KTable.mapValues); fn is applied to both the new and the old value of
// each update, so it should be a pure function. The result is not
// materialized. Options: Named (default KTABLE-MAPVALUES-<n>).
func TableMapValues[K, V, VR any](t KTable[K, V], fn func(value V) VR, opts ...Option) KTable[K, VR] {
	name := t.b.tableNodeName(optionsOf(opts), "MAPVALUES")
	t.b.checkNil(name, "mapper", fn)
	return tableOf(child(t.changes(), name, false, func(_ graph.TaskContext, to []receiver[K, change[VR]]) any {
		return &opNode[K, change[V], K, change[VR]]{name: name, to: to, fn: func(rec topology.Record[K, change[V]], to []receiver[K, change[VR]]) error {
			in, out := rec.Value, change[VR]{HasNew: rec.Value.HasNew, HasOld: rec.Value.HasOld}
			if in.HasNew {
				out.New = fn(in.New)
			}
			if in.HasOld {
				out.Old = fn(in.Old)
			}
			return forward(to, topology.Record[K, change[VR]]{Key: rec.Key, Value: out, Timestamp: rec.Timestamp, Headers: rec.Headers})
		}}
	}))
}

// ToStream returns the table's changes as a stream (Kafka Streams'
// KTable.toStream): one record per update with the key's new value, and for
// a deleted row a record marked Tombstone, whose value is the zero value and
// which sinks write with a null value. Functions that only see keys and
// values (Filter, Peek, ForEach...) cannot tell a tombstone from a zero
// value; a Processor sees Record.Tombstone. Options: Named (default
// KTABLE-TOSTREAM-<n>).
func (t KTable[K, V]) ToStream(opts ...Option) KStream[K, V] {
	name := t.b.tableNodeName(optionsOf(opts), "TOSTREAM")
	return streamOf(child(t.changes(), name, false, func(_ graph.TaskContext, to []receiver[K, V]) any {
		return &opNode[K, change[V], K, V]{name: name, to: to, fn: func(rec topology.Record[K, change[V]], to []receiver[K, V]) error {
			return forward(to, topology.Record[K, V]{Key: rec.Key, Value: rec.Value.New, Tombstone: !rec.Value.HasNew, Timestamp: rec.Timestamp, Headers: rec.Headers})
		}}
	}))
}

// tableSourceNode is the instance of a table source processor (Kafka
// Streams' KTableSource): it applies each record to the store.
type tableSourceNode[K, V any] struct {
	name  string
	table *tableStore[K, V]
}

func (n *tableSourceNode[K, V]) process(rec topology.Record[K, V]) (err error) {
	defer recoverPanic(n.name, &err)
	if rec.Tombstone {
		return nodeError(n.name, n.table.delete(rec.Key, rec.Timestamp, rec.Headers))
	}
	var old V
	var hasOld bool
	if !n.table.cached { // a cached store's flush listener gets the old value itself
		if old, hasOld, err = n.table.kv.Get(rec.Key); err != nil {
			return nodeError(n.name, err)
		}
	}
	return nodeError(n.name, n.table.put(rec.Key, rec.Value, old, hasOld, rec.Timestamp, rec.Headers))
}

// tableStore is the store of a node that materializes a table, and the way
// the table's changes reach the node's children: from the record cache's
// flush listener when the store is cached (updates of a key collapse until
// the cache flushes; the record carries the timestamp of the last update
// and no headers), else right after each write.
type tableStore[K, V any] struct {
	kv     state.KeyValueStore[K, V]
	to     []receiver[K, change[V]]
	cached bool
	// store and vs find values that serialize to null (uncached only).
	store string
	vs    serde.Serde[V]
}

// openTableStore gets the task's instance of store and installs the flush
// listener that forwards its changes to the children.
func openTableStore[K, V any](tc graph.TaskContext, store string, vs serde.Serde[V], to []receiver[K, change[V]]) (*tableStore[K, V], error) {
	st, err := tc.Store(store)
	if err != nil {
		return nil, err
	}
	kv, err := state.KeyValue[K, V](st)
	if err != nil {
		return nil, err
	}
	fl, ok := st.(state.FlushListener[K, V])
	if !ok {
		return nil, fmt.Errorf("store %q (%T) does not implement state.FlushListener", store, st)
	}
	t := &tableStore[K, V]{kv: kv, to: to, store: store, vs: vs}
	t.cached = fl.SetFlushListener(func(f state.Flushed[K, V]) error {
		c := change[V]{New: f.Value, Old: f.Old, HasNew: f.HasValue, HasOld: f.HasOld}
		if err := forward(to, topology.Record[K, change[V]]{Key: f.Key, Value: c, Timestamp: f.Timestamp}); err != nil {
			// Not a store failure: the error handler decides, as for
			// the records a node forwards itself.
			return tc.HandleFlushError(err)
		}
		return nil
	})
	return t, nil
}

// put writes the key's new value and, unless the store is cached, forwards
// the change from old (hasOld false: the key had no value).
func (t *tableStore[K, V]) put(key K, value, old V, hasOld bool, ts int64, headers []topology.Header) error {
	if !t.cached {
		// A value that serializes to null deletes the row (as a null
		// aggregate does in Kafka Streams), which downstream must see as
		// a deletion. The cache's flush listener sees it by itself.
		// A serde error is left to Put, which makes it the store's
		// sticky error.
		if b, err := t.vs.Serialize(t.store, value); err == nil && b == nil {
			return t.delete(key, ts, headers)
		}
	}
	if err := t.kv.Put(key, value); err != nil {
		return err
	}
	if t.cached {
		return nil
	}
	c := change[V]{New: value, Old: old, HasNew: true, HasOld: hasOld}
	return forward(t.to, topology.Record[K, change[V]]{Key: key, Value: c, Timestamp: ts, Headers: headers})
}

// delete removes the key and, unless the store is cached, forwards the
// deletion. Like Kafka Streams' uncached KTableSource, it forwards a change
// with neither value when the key had none.
func (t *tableStore[K, V]) delete(key K, ts int64, headers []topology.Header) error {
	old, hasOld, err := t.kv.Delete(key)
	if err != nil || t.cached {
		return err
	}
	c := change[V]{Old: old, HasOld: hasOld}
	return forward(t.to, topology.Record[K, change[V]]{Key: key, Value: c, Timestamp: ts, Headers: headers})
}
