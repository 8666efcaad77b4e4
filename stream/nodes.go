package stream

import (
	"fmt"
	"runtime/debug"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kgo"
)

// receiver is a node instance that accepts typed records. Parents call their
// children directly, so records move through a task without boxing.
type receiver[K, V any] interface {
	process(rec topology.Record[K, V]) error
}

// forward sends rec to every receiver and stops at the first error.
func forward[K, V any](to []receiver[K, V], rec topology.Record[K, V]) error {
	for _, c := range to {
		if err := c.process(rec); err != nil {
			return err
		}
	}
	return nil
}

// passThrough is the opNode function of nodes that forward records unchanged.
func passThrough[K, V any](rec topology.Record[K, V], to []receiver[K, V]) error {
	return forward(to, rec)
}

// recoverPanic turns a panic in user code into a ProcessingError naming the
// node. It must be deferred directly by the node's process method.
func recoverPanic(node string, err *error) {
	if p := recover(); p != nil {
		*err = &topology.ProcessingError{Node: node, Err: fmt.Errorf("%w: %v\n%s", topology.ErrPanic, p, debug.Stack())}
	}
}

// nodeError wraps an error returned by user code in a ProcessingError naming
// the node, unless a node downstream already did.
func nodeError(node string, err error) error {
	if _, ok := err.(*topology.ProcessingError); ok || err == nil {
		return err
	}
	return &topology.ProcessingError{Node: node, Err: err}
}

// opNode is the instance of a stateless operator: fn transforms one record
// and forwards results to the children.
type opNode[K, V, KR, VR any] struct {
	name string
	to   []receiver[KR, VR]
	fn   func(rec topology.Record[K, V], to []receiver[KR, VR]) error
}

func (n *opNode[K, V, KR, VR]) process(rec topology.Record[K, V]) (err error) {
	defer recoverPanic(n.name, &err)
	return n.fn(rec, n.to)
}

// skipRecord logs (at debug level) and counts a record a node drops on
// purpose, like Kafka Streams' dropped-records sensor.
func skipRecord(tc graph.TaskContext, node, reason string) {
	args := []any{"node", node, "reason", reason}
	if md, ok := tc.RecordMetadata(); ok {
		args = append(args, "topic", md.Topic, "partition", md.Partition, "offset", md.Offset)
	}
	tc.Logger().Debug("skipping record", args...)
	tc.RecordSkipped(node, reason)
}

// sourceNode decodes raw Kafka records and forwards them. A record with a
// null value is marked Tombstone.
type sourceNode[K, V any] struct {
	name    string
	tc      graph.TaskContext
	ks      serde.Serde[K]
	vs      serde.Serde[V]
	extract TimestampExtractor[K, V]
	// dropNullKeys skips records with a null key (table sources).
	dropNullKeys bool
	to           []receiver[K, V]
}

var _ graph.Source = (*sourceNode[string, string])(nil)

// Process implements graph.Source.
func (n *sourceNode[K, V]) Process(raw *kgo.Record) (err error) {
	if n.dropNullKeys && raw.Key == nil {
		skipRecord(n.tc, n.name, "null_key")
		return nil
	}
	k, err := n.ks.Deserialize(raw.Topic, raw.Key)
	if err != nil {
		return n.deserializationError(raw, true, err)
	}
	v, err := n.vs.Deserialize(raw.Topic, raw.Value)
	if err != nil {
		return n.deserializationError(raw, false, err)
	}
	rec := topology.Record[K, V]{Key: k, Value: v, Timestamp: raw.Timestamp.UnixMilli(), Headers: raw.Headers, Tombstone: raw.Value == nil}
	if n.extract == nil {
		// Kafka Streams' default extractor, FailOnInvalidTimestamp.
		if rec.Timestamp < 0 {
			return &topology.ProcessingError{Node: n.name, Err: fmt.Errorf("input record has invalid (negative) timestamp %d; set a timestamp extractor (WithTimestampExtractor) to process it", rec.Timestamp)}
		}
	} else {
		if err := n.extractTimestamp(&rec); err != nil {
			return err
		}
		if rec.Timestamp < 0 {
			// As Kafka Streams' RecordQueue: a negative extracted timestamp
			// drops the record (logged and counted).
			n.tc.Logger().Warn("skipping record due to negative extracted timestamp",
				"node", n.name, "topic", raw.Topic, "partition", raw.Partition, "offset", raw.Offset, "timestamp", rec.Timestamp)
			n.tc.RecordSkipped(n.name, "invalid_timestamp")
			return nil
		}
	}
	n.tc.AdvanceStreamTime(rec.Timestamp)
	return forward(n.to, rec)
}

func (n *sourceNode[K, V]) extractTimestamp(rec *topology.Record[K, V]) (err error) {
	defer recoverPanic(n.name, &err)
	rec.Timestamp = n.extract(*rec, n.tc.StreamTime())
	return nil
}

func (n *sourceNode[K, V]) deserializationError(raw *kgo.Record, key bool, err error) error {
	return &topology.DeserializationError{
		Node: n.name, Key: key, Err: err,
		RecordMetadata: topology.RecordMetadata{Topic: raw.Topic, Partition: raw.Partition, Offset: raw.Offset},
	}
}

// sinkNode serializes records and hands them to the runtime. A Tombstone
// record is written with a null value.
type sinkNode[K, V any] struct {
	name        string
	tc          graph.TaskContext
	topic       string // full name; "" when chosen per record
	topicFn     func(topology.Record[K, V]) string
	ks          serde.Serde[K]
	vs          serde.Serde[V]
	partitioner Partitioner[K, V]
	// dropNullKeys skips (logs and counts) records whose key serializes to
	// null: a grouping's repartition sink drops them, because aggregations
	// do (Kafka Streams drops them at the aggregation).
	dropNullKeys bool
}

func (n *sinkNode[K, V]) process(rec topology.Record[K, V]) (err error) {
	defer recoverPanic(n.name, &err)
	topic := n.topic
	if n.topicFn != nil {
		if topic = n.topicFn(rec); topic == "" {
			return &topology.ProcessingError{Node: n.name, Err: fmt.Errorf("topic name extractor returned an empty topic")}
		}
	}
	key, err := n.ks.Serialize(topic, rec.Key)
	if err != nil {
		return &topology.ProcessingError{Node: n.name, Err: fmt.Errorf("serializing key for topic %q: %w", topic, err)}
	}
	if key == nil && n.dropNullKeys {
		skipRecord(n.tc, n.name, "null_key")
		return nil
	}
	var value []byte
	if !rec.Tombstone {
		if value, err = n.vs.Serialize(topic, rec.Value); err != nil {
			return &topology.ProcessingError{Node: n.name, Err: fmt.Errorf("serializing value for topic %q: %w", topic, err)}
		}
	}
	partition := int32(-1)
	if n.partitioner != nil {
		count, err := n.tc.PartitionCount(topic)
		if err != nil {
			return &topology.ProcessingError{Node: n.name, Err: err}
		}
		partition = n.partitioner(topic, rec.Key, rec.Value, count)
		if partition < 0 || partition >= count {
			return &topology.ProcessingError{Node: n.name, Err: fmt.Errorf("partitioner returned partition %d of topic %q, which has %d", partition, topic, count)}
		}
	}
	return n.tc.Send(graph.OutRecord{Topic: topic, Partition: partition, Key: key, Value: value, Headers: rec.Headers, Timestamp: rec.Timestamp})
}
