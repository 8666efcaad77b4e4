package stream

import (
	"errors"
	"fmt"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/topology"
)

// KGroupedStream is a stream grouped by key, ready to be aggregated with
// its methods Count and Reduce or the function Aggregate (a function
// because Go methods cannot add the aggregate's type parameter). Create it
// with KStream.GroupByKey or GroupBy.
//
// Every aggregation keeps its results in a key-value store (see Materialized and the store options) and returns them as a
// KTable. With the store's record cache (the default), the updates of a key
// are collapsed until the cache is flushed at commit, and only the latest
// result goes downstream, with the timestamp of the last update and no
// headers; with WithCachingDisabled every result goes downstream at once,
// with the input record's timestamp and headers. Unlike Kafka Streams, a
// result's timestamp is the input record's, not the largest timestamp that
// contributed to the aggregate.
//
// Aggregations drop (debug log, skipped-records metric) input records with
// a null key (reason "null_key") or a null value (a Tombstone record,
// reason "null_value"), as Kafka Streams does (it logs them at WARN
// level; Runnel at DEBUG, since the metric counts them). A key is null when its serde
// serializes it to nil, which among the built-in serdes only serde.Bytes
// does (for a nil slice): serde.String writes "" as an empty, non-null key,
// so a Kafka record with a null key read with serde.String is aggregated
// under "".
type KGroupedStream[K, V any] struct {
	s  pipe[K, V]
	ks serde.Serde[K]
	vs serde.Serde[V]
	// name is the grouping's name (Kafka Streams' Grouped.as); "" if none.
	name string
	// shared is the stream read back from the repartition topic once an
	// aggregation created it; with a grouping name, every aggregation of
	// the grouping reads it (the zero KStream until then).
	shared *pipe[K, V]
}

// GroupByKey groups s by its key (Kafka Streams' groupByKey), using the
// serdes for the repartition topic and the aggregations' stores.
//
// When an operator upstream may have changed the key (Map, SelectKey,
// FlatMap, Process, GroupBy...; not MapValues, Filter...), each aggregation
// first writes the stream through the repartition topic
// "<app-id>-<name>-repartition", so that all records of a key meet in one
// task. Its name is the grouping's Named name, else the aggregation's store
// (see Materialized). Named also makes the aggregations of the grouping
// share one repartition topic; otherwise each has its own, as in Kafka
// Streams. The name must be a valid topic name part. Options: Named.
func (s KStream[K, V]) GroupByKey(keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...Option) KGroupedStream[K, V] {
	o := optionsOf(opts)
	s.b.checkGroupingName(o.name)
	s.b.checkNil(nameOr(o.name, s.node), "key serde", keySerde, "value serde", valueSerde)
	return KGroupedStream[K, V]{s: s.pipe, ks: keySerde, vs: valueSerde, name: o.name, shared: new(pipe[K, V])}
}

// GroupBy groups s by the key selector returns for each record (Kafka
// Streams' groupBy): it is SelectKey followed by GroupByKey, so the
// aggregations always repartition. The key-select node is named by Named
// (default KSTREAM-KEY-SELECT-<n>), which also names the repartition topic
// as for GroupByKey. Options: Named.
func GroupBy[K, V, KR any](s KStream[K, V], selector func(key K, value V) KR, keySerde serde.Serde[KR], valueSerde serde.Serde[V], opts ...Option) KGroupedStream[KR, V] {
	o := optionsOf(opts)
	name := s.b.nodeName(o, "KEY-SELECT")
	s.b.checkGroupingName(o.name)
	s.b.checkNil(name, "key selector", selector, "key serde", keySerde, "value serde", valueSerde)
	selected := child(s.pipe, name, true, func(_ graph.TaskContext, to []receiver[KR, V]) any {
		return &opNode[K, V, KR, V]{name: name, to: to, fn: func(rec topology.Record[K, V], to []receiver[KR, V]) error {
			return forward(to, topology.Record[KR, V]{Key: selector(rec.Key, rec.Value), Value: rec.Value, Timestamp: rec.Timestamp, Headers: rec.Headers, Tombstone: rec.Tombstone})
		}}
	})
	return KGroupedStream[KR, V]{s: selected, ks: keySerde, vs: valueSerde, name: o.name, shared: new(pipe[KR, V])}
}

// checkGroupingName records a build error when a grouping's name cannot
// name a repartition topic.
func (b *Builder) checkGroupingName(name string) {
	if name != "" && !graph.ValidName(name) {
		b.fail(name, fmt.Errorf("grouping name %q is not a valid topic name part (letters, digits, '.', '_', '-')", name))
	}
}

// input returns the stream an aggregation with the given store reads (Kafka
// Streams' GroupedStreamAggregateBuilder): g's stream, or, when its key may
// have changed, the stream read back from the repartition topic named
// after the grouping or else the store. repartitioned says which; a
// repartition sink has dropped records with null keys.
func (g KGroupedStream[K, V]) input(store string, storeGenerated bool) (in pipe[K, V], repartitioned bool) {
	if !g.s.keyChanged {
		return g.s, false
	}
	if g.name != "" && g.shared.b != nil {
		g.s.b.seq += 3 // Kafka Streams generates the sink, filter and source names again
		return *g.shared, true
	}
	base, generated := g.name, false
	if base == "" {
		base, generated = store, storeGenerated
	}
	*g.shared = g.s.repartition(base, generated, g.ks, g.vs, 0, nil, true)
	return *g.shared, true
}

// KGroupedTable is a table regrouped by a new key, ready to be aggregated
// with its methods Count and Reduce or the function TableAggregate. Create
// it with TableGroupBy. Results are stored and cached as for KGroupedStream.
//
// Every update of the source table reaches the aggregation as a subtract
// record for the old row (under the old row's group) followed by an add
// record for the new row (under its group), so a row that moves to another
// group is retracted from its old group. Without caching, an update that
// stays in its group thus emits two results (after subtracting, then after
// adding); Kafka Streams 3.4 and later sends one combined record instead.
type KGroupedTable[K, V any] struct {
	s      pipe[K, change[V]] // the select node
	ks     serde.Serde[K]
	vs     serde.Serde[V]
	name   string
	shared *pipe[K, change[V]]
}

// TableGroupBy regroups t by the key and value selector returns for each
// row (Kafka Streams' KTable.groupBy). Aggregations of the result always
// read it through the repartition topic "<app-id>-<name>-repartition",
// named after the grouping (Named) or else the aggregation's store; its
// records carry the value and a trailing flag byte (see KGroupedTable).
// The select node is named by Named (default KTABLE-SELECT-<n>). A row
// whose selected key serializes to null is dropped and counted
// ("null_key"); one whose selected value serializes to null is not
// aggregated. Options: Named.
func TableGroupBy[K, V, KR, VR any](t KTable[K, V], selector func(key K, value V) (KR, VR), keySerde serde.Serde[KR], valueSerde serde.Serde[VR], opts ...Option) KGroupedTable[KR, VR] {
	o := optionsOf(opts)
	name := t.b.tableNodeName(o, "SELECT")
	t.b.checkGroupingName(o.name)
	t.b.checkNil(name, "selector", selector, "key serde", keySerde, "value serde", valueSerde)
	selected := child(t.changes(), name, true, func(_ graph.TaskContext, to []receiver[KR, change[VR]]) any {
		return &opNode[K, change[V], KR, change[VR]]{name: name, to: to, fn: func(rec topology.Record[K, change[V]], to []receiver[KR, change[VR]]) error {
			// Subtract the old row first, as Kafka Streams' KTableRepartitionMap.
			if rec.Value.HasOld {
				k, v := selector(rec.Key, rec.Value.Old)
				if err := forward(to, topology.Record[KR, change[VR]]{Key: k, Value: change[VR]{Old: v, HasOld: true}, Timestamp: rec.Timestamp, Headers: rec.Headers}); err != nil {
					return err
				}
			}
			if rec.Value.HasNew {
				k, v := selector(rec.Key, rec.Value.New)
				return forward(to, topology.Record[KR, change[VR]]{Key: k, Value: change[VR]{New: v, HasNew: true}, Timestamp: rec.Timestamp, Headers: rec.Headers})
			}
			return nil
		}}
	})
	return KGroupedTable[KR, VR]{s: selected, ks: keySerde, vs: valueSerde, name: o.name, shared: new(pipe[KR, change[VR]])}
}

// input returns the stream of changes an aggregation with the given store
// reads back from the repartition topic (Kafka Streams' KGroupedTableImpl:
// a sink and a source, no filter; Named on the aggregation names them
// "<name>-sink" and "<name>-source").
func (g KGroupedTable[K, V]) input(o *options, store string, storeGenerated bool) pipe[K, change[V]] {
	sinkName := g.s.b.suffixed(o.name, "-sink", "SINK")
	sourceName := g.s.b.suffixed(o.name, "-source", "SOURCE")
	if g.name != "" && g.shared.b != nil {
		return *g.shared
	}
	base, generated := g.name, false
	if base == "" {
		base, generated = store, storeGenerated
	}
	topic := base + "-repartition"
	g.s.b.internal = append(g.s.b.internal, graph.InternalTopic{Name: topic, Kind: graph.Repartition, Generated: generated})
	cs := changeSerde[V]{g.vs}
	g.s.sink(sinkName, topic, nil, g.ks, cs, nil, true)
	*g.shared = addSource(g.s.b, sourceName, []string{topic}, nil, g.ks, cs, topology.Earliest, nil, false)
	return *g.shared
}

// changeSerde encodes one side of a table change for a grouped table's
// repartition topic, in Kafka Streams' ChangedSerializer format (as written
// before 3.4): the value's bytes followed by one flag byte, 0 for an old
// value to subtract, 1 for a new value to add. A value that serializes to
// null is written as a null record, which the aggregation ignores.
type changeSerde[V any] struct{ inner serde.Serde[V] }

// Serialize encodes c, which has exactly one side (the select node sends
// the old and the new row separately).
func (s changeSerde[V]) Serialize(topic string, c change[V]) ([]byte, error) {
	v, flag := c.New, byte(1)
	if !c.HasNew {
		v, flag = c.Old, 0
	}
	data, err := s.inner.Serialize(topic, v)
	if err != nil || data == nil {
		return nil, err
	}
	out := make([]byte, len(data)+1)
	copy(out, data)
	out[len(data)] = flag
	return out, nil
}

// Deserialize decodes a change; null data is a change with neither side.
func (s changeSerde[V]) Deserialize(topic string, data []byte) (change[V], error) {
	if data == nil {
		return change[V]{}, nil
	}
	if len(data) == 0 {
		return change[V]{}, errors.New("stream: grouped table record has an empty value, want a value and a flag byte")
	}
	v, err := s.inner.Deserialize(topic, data[:len(data)-1])
	if err != nil {
		return change[V]{}, err
	}
	switch flag := data[len(data)-1]; flag {
	case 0:
		return change[V]{Old: v, HasOld: true}, nil
	case 1:
		return change[V]{New: v, HasNew: true}, nil
	default:
		return change[V]{}, fmt.Errorf("stream: grouped table record has flag byte %d, want 0 (subtract) or 1 (add)", flag)
	}
}
