package stream

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/topology"
)

// KeyValue is a key and a value, as returned by FlatMap.
type KeyValue[K, V any] struct {
	Key   K
	Value V
}

// KV returns a KeyValue.
func KV[K, V any](key K, value V) KeyValue[K, V] { return KeyValue[K, V]{Key: key, Value: value} }

// Filter keeps the records for which pred returns true.
func (s KStream[K, V]) Filter(pred func(key K, value V) bool, opts ...Option) KStream[K, V] {
	return s.filter("FILTER", pred, true, opts)
}

// FilterNot drops the records for which pred returns true.
func (s KStream[K, V]) FilterNot(pred func(key K, value V) bool, opts ...Option) KStream[K, V] {
	return s.filter("FILTER", pred, false, opts)
}

func (s KStream[K, V]) filter(prefix string, pred func(K, V) bool, keep bool, opts []Option) KStream[K, V] {
	name := s.b.nodeName(optionsOf(opts), prefix)
	s.b.checkNil(name, "predicate", pred)
	return streamOf(child(s.pipe, name, s.keyChanged, func(_ graph.TaskContext, to []receiver[K, V]) any {
		return &opNode[K, V, K, V]{name: name, to: to, fn: func(rec topology.Record[K, V], to []receiver[K, V]) error {
			if pred(rec.Key, rec.Value) != keep {
				return nil
			}
			return forward(to, rec)
		}}
	}))
}

// Map replaces each record's key and value. The key may change, so grouping
// or joining the result repartitions it.
func Map[K, V, KR, VR any](s KStream[K, V], fn func(key K, value V) (KR, VR), opts ...Option) KStream[KR, VR] {
	name := s.b.nodeName(optionsOf(opts), "MAP")
	s.b.checkNil(name, "mapper", fn)
	return streamOf(child(s.pipe, name, true, func(_ graph.TaskContext, to []receiver[KR, VR]) any {
		return &opNode[K, V, KR, VR]{name: name, to: to, fn: func(rec topology.Record[K, V], to []receiver[KR, VR]) error {
			k, v := fn(rec.Key, rec.Value)
			return forward(to, topology.Record[KR, VR]{Key: k, Value: v, Timestamp: rec.Timestamp, Headers: rec.Headers})
		}}
	}))
}

// MapValues replaces each record's value; the key is kept, so no
// repartition is needed downstream.
func MapValues[K, V, VR any](s KStream[K, V], fn func(value V) VR, opts ...Option) KStream[K, VR] {
	name := s.b.nodeName(optionsOf(opts), "MAPVALUES")
	s.b.checkNil(name, "mapper", fn)
	return streamOf(child(s.pipe, name, s.keyChanged, func(_ graph.TaskContext, to []receiver[K, VR]) any {
		return &opNode[K, V, K, VR]{name: name, to: to, fn: func(rec topology.Record[K, V], to []receiver[K, VR]) error {
			return forward(to, topology.Record[K, VR]{Key: rec.Key, Value: fn(rec.Value), Timestamp: rec.Timestamp, Headers: rec.Headers})
		}}
	}))
}

// SelectKey sets a new key computed from each record; the value, and with
// it a Tombstone mark, is kept.
func SelectKey[K, V, KR any](s KStream[K, V], fn func(key K, value V) KR, opts ...Option) KStream[KR, V] {
	name := s.b.nodeName(optionsOf(opts), "KEY-SELECT")
	s.b.checkNil(name, "key selector", fn)
	return streamOf(child(s.pipe, name, true, func(_ graph.TaskContext, to []receiver[KR, V]) any {
		return &opNode[K, V, KR, V]{name: name, to: to, fn: func(rec topology.Record[K, V], to []receiver[KR, V]) error {
			return forward(to, topology.Record[KR, V]{Key: fn(rec.Key, rec.Value), Value: rec.Value, Timestamp: rec.Timestamp, Headers: rec.Headers, Tombstone: rec.Tombstone})
		}}
	}))
}

// FlatMap replaces each record with zero or more records; they keep the
// input's timestamp and headers.
func FlatMap[K, V, KR, VR any](s KStream[K, V], fn func(key K, value V) []KeyValue[KR, VR], opts ...Option) KStream[KR, VR] {
	name := s.b.nodeName(optionsOf(opts), "FLATMAP")
	s.b.checkNil(name, "mapper", fn)
	return streamOf(child(s.pipe, name, true, func(_ graph.TaskContext, to []receiver[KR, VR]) any {
		return &opNode[K, V, KR, VR]{name: name, to: to, fn: func(rec topology.Record[K, V], to []receiver[KR, VR]) error {
			for _, kv := range fn(rec.Key, rec.Value) {
				if err := forward(to, topology.Record[KR, VR]{Key: kv.Key, Value: kv.Value, Timestamp: rec.Timestamp, Headers: rec.Headers}); err != nil {
					return err
				}
			}
			return nil
		}}
	}))
}

// FlatMapValues replaces each record with one record per returned value,
// keeping the key, timestamp and headers.
func FlatMapValues[K, V, VR any](s KStream[K, V], fn func(value V) []VR, opts ...Option) KStream[K, VR] {
	name := s.b.nodeName(optionsOf(opts), "FLATMAPVALUES")
	s.b.checkNil(name, "mapper", fn)
	return streamOf(child(s.pipe, name, s.keyChanged, func(_ graph.TaskContext, to []receiver[K, VR]) any {
		return &opNode[K, V, K, VR]{name: name, to: to, fn: func(rec topology.Record[K, V], to []receiver[K, VR]) error {
			for _, v := range fn(rec.Value) {
				if err := forward(to, topology.Record[K, VR]{Key: rec.Key, Value: v, Timestamp: rec.Timestamp, Headers: rec.Headers}); err != nil {
					return err
				}
			}
			return nil
		}}
	}))
}

// Peek calls fn for each record and passes the record on unchanged. fn's side
// effects are not covered by exactly-once: a record may be peeked again
// after a failure.
func (s KStream[K, V]) Peek(fn func(key K, value V), opts ...Option) KStream[K, V] {
	name := s.b.nodeName(optionsOf(opts), "PEEK")
	s.b.checkNil(name, "action", fn)
	return streamOf(child(s.pipe, name, s.keyChanged, func(_ graph.TaskContext, to []receiver[K, V]) any {
		return &opNode[K, V, K, V]{name: name, to: to, fn: func(rec topology.Record[K, V], to []receiver[K, V]) error {
			fn(rec.Key, rec.Value)
			return forward(to, rec)
		}}
	}))
}

// ForEach calls fn for each record; it ends the stream. Like Peek, fn may see
// a record again after a failure.
func (s KStream[K, V]) ForEach(fn func(key K, value V), opts ...Option) {
	name := s.b.nodeName(optionsOf(opts), "FOREACH")
	s.b.checkNil(name, "action", fn)
	child(s.pipe, name, s.keyChanged, func(_ graph.TaskContext, to []receiver[K, V]) any {
		return &opNode[K, V, K, V]{name: name, to: to, fn: func(rec topology.Record[K, V], _ []receiver[K, V]) error {
			fn(rec.Key, rec.Value)
			return nil
		}}
	})
}

// Merge returns a stream with the records of s and other, in the order they
// are processed. Both must come from the same Builder. Merged streams run in
// one subtopology, so when they read different topics those topics must be
// co-partitioned (the same partition count), which the application checks
// at start. This is a Runnel rule stricter than Kafka Streams, which needs
// co-partitioning only for joins.
func (s KStream[K, V]) Merge(other KStream[K, V], opts ...Option) KStream[K, V] {
	name := s.b.nodeName(optionsOf(opts), "MERGE")
	if other.b != s.b {
		s.b.fail(name, errors.New("cannot merge streams of different builders"))
		other.node = s.node
	}
	s.b.add(&graph.Node{
		Name: name, Kind: graph.ProcessorKind, Parents: []string{s.node, other.node},
		Make: func(_ graph.TaskContext, children []graph.Child) (any, error) {
			to, err := receivers[K, V](children)
			return &opNode[K, V, K, V]{name: name, to: to, fn: passThrough[K, V]}, err
		},
	})
	return streamOf(pipe[K, V]{b: s.b, node: name, keyChanged: s.keyChanged || other.keyChanged})
}

// To writes the stream to a topic, serializing with the given serdes; a
// record marked Tombstone is written with a null value. Options: Named; for
// a partitioner, use s.WithPartitioner(fn).To. The topic must exist at
// start.
func (s KStream[K, V]) To(topic string, keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...SinkOption) {
	s.to(topic, keySerde, valueSerde, nil, opts)
}

// ToFunc writes each record to the topic fn returns for it (Kafka Streams'
// TopicNameExtractor). The topics must exist. Options: Named; for a
// partitioner, use s.WithPartitioner(p).ToFunc.
func (s KStream[K, V]) ToFunc(fn func(rec topology.Record[K, V]) string, keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...SinkOption) {
	s.toFunc(fn, keySerde, valueSerde, nil, opts)
}

func (s KStream[K, V]) to(topic string, ks serde.Serde[K], vs serde.Serde[V], part Partitioner[K, V], opts []SinkOption) {
	name := s.b.nodeName(optionsOf(opts), "SINK")
	if topic == "" {
		s.b.fail(name, errors.New("empty topic name"))
	}
	s.sink(name, topic, nil, ks, vs, part, false)
}

func (s KStream[K, V]) toFunc(fn func(rec topology.Record[K, V]) string, ks serde.Serde[K], vs serde.Serde[V], part Partitioner[K, V], opts []SinkOption) {
	name := s.b.nodeName(optionsOf(opts), "SINK")
	s.sink(name, "", fn, ks, vs, part, false)
	s.b.checkNil(name, "topic name extractor", fn)
}

// Partitioner chooses the partition of each record a sink writes: it gets
// the full topic name, key, value and partition count and returns a
// partition in [0, numPartitions) (Kafka Streams' StreamPartitioner).
type Partitioner[K, V any] func(topic string, key K, value V, numPartitions int32) int32

// PartitionedKStream is a stream whose sinks use a Partitioner; get one
// from KStream.WithPartitioner. Its methods are the KStream methods of the
// same names, and take the same options.
type PartitionedKStream[K, V any] struct {
	s    KStream[K, V]
	part Partitioner[K, V]
}

// WithPartitioner returns the sinks of s with p as their partitioner
// (Kafka Streams' Produced and Repartitioned.streamPartitioner):
//
//	s.WithPartitioner(p).To("out", serde.String, serde.Int64)
//
// It is not an option because p must take the stream's key and value
// types: here a partitioner of other types does not compile. A nil p means
// the default: the murmur2 hash of the serialized key, as Kafka's default
// partitioner (records with a null key are spread sticky-randomly).
func (s KStream[K, V]) WithPartitioner(p Partitioner[K, V]) PartitionedKStream[K, V] {
	return PartitionedKStream[K, V]{s: s, part: p}
}

// To is KStream.To with the partitioner.
func (ps PartitionedKStream[K, V]) To(topic string, keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...SinkOption) {
	ps.s.to(topic, keySerde, valueSerde, ps.part, opts)
}

// ToFunc is KStream.ToFunc with the partitioner.
func (ps PartitionedKStream[K, V]) ToFunc(fn func(rec topology.Record[K, V]) string, keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...SinkOption) {
	ps.s.toFunc(fn, keySerde, valueSerde, ps.part, opts)
}

// Repartition is KStream.Repartition with the partitioner writing the
// repartition topic.
func (ps PartitionedKStream[K, V]) Repartition(keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...RepartitionOption) KStream[K, V] {
	return ps.s.repartitionWith(keySerde, valueSerde, ps.part, opts)
}

// sink adds a sink node named name that writes topic, or the topic topicFn
// returns per record when topic is "". part is the partitioner (nil: the
// default). With dropNullKeys the sink drops records whose key serializes
// to null.
func (s pipe[K, V]) sink(name, topic string, topicFn func(topology.Record[K, V]) string, ks serde.Serde[K], vs serde.Serde[V], part Partitioner[K, V], dropNullKeys bool) {
	s.b.checkNil(name, "key serde", ks, "value serde", vs)
	var topics []string
	if topic != "" {
		topics = []string{topic}
	}
	s.b.add(&graph.Node{
		Name: name, Kind: graph.SinkKind, Parents: []string{s.node}, Topics: topics,
		Make: func(tc graph.TaskContext, _ []graph.Child) (any, error) {
			n := &sinkNode[K, V]{name: name, tc: tc, topicFn: topicFn, ks: ks, vs: vs, partitioner: part, dropNullKeys: dropNullKeys}
			if topic != "" {
				n.topic = tc.TopicName(topic)
			}
			return n, nil
		},
	})
}

// generatedName matches the names Kafka Streams generates; a Repartition
// named like one gets generated node names too, as in Kafka Streams.
var generatedName = regexp.MustCompile(`^KSTREAM.*-[0-9]{10}$`)

// Repartition writes the stream through an internal topic and reads it
// back, so records are partitioned by their (new) key and downstream work is
// spread over that topic's partitions. Options: Named, WithPartitions; for
// a partitioner, use s.WithPartitioner(p).Repartition.
//
// The names follow Kafka Streams' repartition(). Named("foo") gives the topic
// "foo-repartition" ("<app-id>-foo-repartition" in Kafka; a name already
// ending in "-repartition" is used as is) and the nodes
// "foo-repartition-filter", "foo-repartition-sink" and
// "foo-repartition-source". Unnamed, the topic is
// "KSTREAM-REPARTITION-<n>-repartition" and the nodes get generated names
// (KSTREAM-FILTER-, KSTREAM-SINK-, KSTREAM-SOURCE-). The filter node passes
// every record on: Kafka Streams has it (its predicate is always true), so
// Runnel keeps it for identical Describe output and numbering.
func (s KStream[K, V]) Repartition(keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...RepartitionOption) KStream[K, V] {
	return s.repartitionWith(keySerde, valueSerde, nil, opts)
}

func (s KStream[K, V]) repartitionWith(ks serde.Serde[K], vs serde.Serde[V], part Partitioner[K, V], opts []RepartitionOption) KStream[K, V] {
	o := optionsOf(opts)
	base, generated := o.name, o.name == ""
	if generated {
		base = s.b.generate("REPARTITION") // unlike other operators, a named Repartition takes no number
	} else if !graph.ValidName(base) {
		s.b.fail(base, fmt.Errorf("name %q is not a valid topic name part (letters, digits, '.', '_', '-')", base))
	}
	if o.partitions < 0 {
		s.b.fail(base, fmt.Errorf("partition count %d is negative", o.partitions))
	}
	return streamOf(s.repartition(base, generated, ks, vs, o.partitions, part, false))
}

// repartition writes s to the internal topic "<base>-repartition" (base as
// is when it already ends so) and reads it back, with the node names of
// Kafka Streams' createRepartitionedSource; generated says base derives
// from a generated name. partitions and part are the topic's partition
// count (0: default) and partitioner (nil: default); with dropNullKeys the
// sink drops records with null keys (groupings).
func (s pipe[K, V]) repartition(base string, generated bool, ks serde.Serde[K], vs serde.Serde[V], partitions int32, part Partitioner[K, V], dropNullKeys bool) pipe[K, V] {
	topic := base
	if !strings.HasSuffix(topic, "-repartition") {
		topic += "-repartition"
	}
	// Kafka Streams always generates these three names, to keep the
	// numbering stable, and uses them only for a generated base name.
	sinkName, filterName, sourceName := s.b.generate("SINK"), s.b.generate("FILTER"), s.b.generate("SOURCE")
	if !generatedName.MatchString(base) {
		sinkName, filterName, sourceName = topic+"-sink", topic+"-filter", topic+"-source"
	}
	s.b.internal = append(s.b.internal, graph.InternalTopic{Name: topic, Kind: graph.Repartition, Partitions: partitions, Generated: generated})
	filter := child(s, filterName, s.keyChanged, func(_ graph.TaskContext, to []receiver[K, V]) any {
		return &opNode[K, V, K, V]{name: filterName, to: to, fn: passThrough[K, V]}
	})
	filter.sink(sinkName, topic, nil, ks, vs, part, dropNullKeys)
	return addSource(s.b, sourceName, []string{topic}, nil, ks, vs, topology.Earliest, nil, false)
}
