package stream

import (
	"fmt"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/topology"
)

// Count counts the records of each key (Kafka Streams' count); see
// KGroupedStream for caching, timestamps and null keys. The result's value
// serde is serde.Int64. Options: Named (default KSTREAM-AGGREGATE-<n>),
// Materialized (default KSTREAM-AGGREGATE-STATE-STORE-<n>),
// WithInMemoryStore, WithLoggingDisabled, WithChangelogConfigs,
// WithCachingDisabled.
func (g KGroupedStream[K, V]) Count(opts ...MaterializedOption) KTable[K, int64] {
	o := optionsOf(opts)
	if o.store.configured && o.store.name == "" {
		// Kafka Streams' count(Materialized) burns a number for an
		// unnamed store, and so does Runnel, for the same numbering.
		g.s.b.seq++
	}
	return aggregateStream(g, o, "AGGREGATE", serde.Int64, func(_ K, _ V, agg int64, _ bool) int64 { return agg + 1 })
}

// Reduce combines the values of each key (Kafka Streams' reduce; see
// KGroupedStream): the first value of a key is its result, and each later
// one is combined with the result by reducer(agg, value). The result's
// value serde is the grouping's. Options: Named (default
// KSTREAM-REDUCE-<n>), Materialized (default KSTREAM-REDUCE-STATE-STORE-<n>)
// and the store options, as for Count.
func (g KGroupedStream[K, V]) Reduce(reducer func(agg, value V) V, opts ...MaterializedOption) KTable[K, V] {
	return aggregateStream(g, optionsOf(opts), "REDUCE", g.vs, func(_ K, v V, agg V, found bool) V {
		if !found {
			return v
		}
		return reducer(agg, v)
	}, "reducer", reducer)
}

// Aggregate folds the values of each key into an aggregate (Kafka Streams'
// aggregate; see KGroupedStream): init returns the aggregate of a key
// before its first value, and agg returns the next aggregate from a value
// and the current one. aggSerde encodes aggregates in the store and its
// changelog. Options: Named (default KSTREAM-AGGREGATE-<n>), Materialized
// (default KSTREAM-AGGREGATE-STATE-STORE-<n>) and the store options, as for
// Count.
func Aggregate[K, V, VR any](g KGroupedStream[K, V], init func() VR, agg func(key K, value V, agg VR) VR, aggSerde serde.Serde[VR], opts ...MaterializedOption) KTable[K, VR] {
	return aggregateStream(g, optionsOf(opts), "AGGREGATE", aggSerde, func(k K, v V, acc VR, found bool) VR {
		if !found {
			acc = init()
		}
		return agg(k, v, acc)
	}, "initializer", init, "aggregator", agg, "aggregate serde", aggSerde)
}

// aggregateStream adds a stream aggregation (Kafka Streams'
// KGroupedStreamImpl.doAggregate, whose naming order it keeps: store, node,
// repartition). step returns a key's next aggregate from a value and the
// current aggregate (found false: none yet). checks are name/value pairs
// for checkNil.
func aggregateStream[K, V, VR any](g KGroupedStream[K, V], o *options, prefix string, vs serde.Serde[VR], step func(key K, value V, agg VR, found bool) VR, checks ...any) KTable[K, VR] {
	b := g.s.b
	store, generated := b.storeName(o, "KSTREAM-"+prefix+"-")
	name := b.nodeName(o, prefix)
	b.checkNil(name, checks...)
	ok := b.addStore(name, fmt.Sprintf("node %q", name), dslStore(store, generated, o, g.ks, vs))
	in, repartitioned := g.input(store, generated)
	var keys serde.Serde[K]
	if !repartitioned {
		keys = g.ks // a repartition sink has already dropped null keys
	}
	return tableOf(addStateful(in, name, store, vs, ok, func(tc graph.TaskContext, table *tableStore[K, VR]) receiver[K, V] {
		return &aggregateNode[K, V, VR]{name: name, tc: tc, table: table, keys: keys, keyTopic: tc.TopicName(graph.ChangelogTopic(store)), step: step}
	}))
}

// aggregateNode is the instance of a stream aggregation (Kafka Streams'
// KStreamAggregate and KStreamReduce).
type aggregateNode[K, V, VR any] struct {
	name  string
	tc    graph.TaskContext
	table *tableStore[K, VR]
	// keys, when set, serializes keys to find null ones (for keyTopic).
	keys     serde.Serde[K]
	keyTopic string
	step     func(K, V, VR, bool) VR
}

func (n *aggregateNode[K, V, VR]) process(rec topology.Record[K, V]) (err error) {
	defer recoverPanic(n.name, &err)
	if rec.Tombstone {
		skipRecord(n.tc, n.name, "null_value")
		return nil
	}
	if n.keys != nil {
		key, err := n.keys.Serialize(n.keyTopic, rec.Key)
		if err != nil {
			return &topology.ProcessingError{Node: n.name, Err: fmt.Errorf("serializing key: %w", err)}
		}
		if key == nil {
			skipRecord(n.tc, n.name, "null_key")
			return nil
		}
	}
	old, found, err := n.table.kv.Get(rec.Key)
	if err != nil {
		return nodeError(n.name, err)
	}
	return nodeError(n.name, n.table.put(rec.Key, n.step(rec.Key, rec.Value, old, found), old, found, rec.Timestamp, rec.Headers))
}

// Count counts the rows of each group of a regrouped table (Kafka Streams'
// KGroupedTable.count; see KGroupedTable): a row moving to another group or
// deleted is subtracted from its old group, whose count may drop to 0 (the
// group's row stays). Options: Named (default KTABLE-AGGREGATE-<n>; it also
// names the repartition nodes "<name>-sink" and "<name>-source"),
// Materialized (default KTABLE-AGGREGATE-STATE-STORE-<n>) and the store
// options, as for KGroupedStream.Count.
func (g KGroupedTable[K, V]) Count(opts ...MaterializedOption) KTable[K, int64] {
	return aggregateTable(g, optionsOf(opts), "AGGREGATE", serde.Int64,
		func(_ K, _ V, agg int64, _ bool) int64 { return agg + 1 },
		func(_ K, _ V, agg int64) int64 { return agg - 1 })
}

// Reduce combines the rows of each group (Kafka Streams'
// KGroupedTable.reduce): adder(agg, value) adds a new row to its group's
// result (the first row of a group is the result), subtractor(agg, value)
// removes an old one. Options: Named (default KTABLE-REDUCE-<n>),
// Materialized (default KTABLE-AGGREGATE-STATE-STORE-<n>) and the store
// options, as for Count.
func (g KGroupedTable[K, V]) Reduce(adder, subtractor func(agg, value V) V, opts ...MaterializedOption) KTable[K, V] {
	return aggregateTable(g, optionsOf(opts), "REDUCE", g.vs,
		func(_ K, v V, agg V, found bool) V {
			if !found {
				return v
			}
			return adder(agg, v)
		},
		func(_ K, v V, agg V) V { return subtractor(agg, v) },
		"adder", adder, "subtractor", subtractor)
}

// TableAggregate folds the rows of each group into an aggregate (Kafka
// Streams' KGroupedTable.aggregate): init returns a group's aggregate
// before its first row, adder adds a new row, subtractor removes an old
// one. aggSerde encodes aggregates in the store. Options: Named (default
// KTABLE-AGGREGATE-<n>), Materialized (default
// KTABLE-AGGREGATE-STATE-STORE-<n>) and the store options, as for
// KGroupedTable.Count.
func TableAggregate[K, V, VR any](g KGroupedTable[K, V], init func() VR, adder, subtractor func(key K, value V, agg VR) VR, aggSerde serde.Serde[VR], opts ...MaterializedOption) KTable[K, VR] {
	return aggregateTable(g, optionsOf(opts), "AGGREGATE", aggSerde,
		func(k K, v V, agg VR, found bool) VR {
			if !found {
				agg = init()
			}
			return adder(k, v, agg)
		},
		subtractor,
		"initializer", init, "adder", adder, "subtractor", subtractor, "aggregate serde", aggSerde)
}

// aggregateTable adds a grouped table aggregation (Kafka Streams'
// KGroupedTableImpl.doAggregate, whose naming order it keeps: store,
// repartition sink and source, node). add and sub apply a new and an old
// row to a group's aggregate.
func aggregateTable[K, V, VR any](g KGroupedTable[K, V], o *options, prefix string, vs serde.Serde[VR], add func(K, V, VR, bool) VR, sub func(K, V, VR) VR, checks ...any) KTable[K, VR] {
	b := g.s.b
	store, generated := b.storeName(o, "KTABLE-AGGREGATE-")
	in := g.input(o, store, generated)
	name := b.tableNodeName(o, prefix)
	b.checkNil(name, checks...)
	ok := b.addStore(name, fmt.Sprintf("node %q", name), dslStore(store, generated, o, g.ks, vs))
	return tableOf(addStateful(in, name, store, vs, ok, func(_ graph.TaskContext, table *tableStore[K, VR]) receiver[K, change[V]] {
		return &tableAggregateNode[K, V, VR]{name: name, table: table, add: add, sub: sub}
	}))
}

// tableAggregateNode is the instance of a grouped table aggregation (Kafka
// Streams' KTableAggregate and KTableReduce): it subtracts a change's old
// row from the group's aggregate, then adds its new row.
type tableAggregateNode[K, V, VR any] struct {
	name  string
	table *tableStore[K, VR]
	add   func(K, V, VR, bool) VR
	sub   func(K, V, VR) VR
}

func (n *tableAggregateNode[K, V, VR]) process(rec topology.Record[K, change[V]]) (err error) {
	defer recoverPanic(n.name, &err)
	c := rec.Value
	if !c.HasNew && !c.HasOld { // a null row value
		return nil
	}
	old, found, err := n.table.kv.Get(rec.Key)
	if err != nil {
		return nodeError(n.name, err)
	}
	agg, has := old, found
	if c.HasOld && has {
		agg = n.sub(rec.Key, c.Old, agg)
	}
	if c.HasNew {
		agg, has = n.add(rec.Key, c.New, agg, has), true
	}
	if !has { // nothing to subtract from
		return nil
	}
	return nodeError(n.name, n.table.put(rec.Key, agg, old, found, rec.Timestamp, rec.Headers))
}
