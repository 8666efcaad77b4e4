package stream

import (
	"fmt"
	"reflect"

	"github.com/runnel-dev/runnel/topology"
)

// Option configures one operator. Each option documents its default and
// which operators take it; an option an operator does not use is ignored.
type Option interface{ apply(*options) }

type options struct {
	name        string
	reset       topology.OffsetReset
	timestamps  any
	partitioner any
	partitions  int32
	store       storeOptions
	stores      []string // WithStores
}

type optFn func(*options)

func (f optFn) apply(o *options) { f(o) }

// Named names an operator (any operator). The name appears in Describe,
// logs and errors; for Split it also prefixes the branch names, for
// Repartition it names the internal topic and the nodes around it instead
// of one node, for GroupBy, GroupByKey and TableGroupBy it names the
// repartition topic of their aggregations (Kafka Streams' Grouped.as), and
// for Table it also names the source node ("<name>-source"). Default: a
// generated Kafka Streams-style name such as "KSTREAM-FILTER-0000000003",
// which changes when operators are added before it.
func Named(name string) Option { return optFn(func(o *options) { o.name = name }) }

// WithOffsetReset sets where a source starts reading partitions that have no
// committed offset (From, FromTopics, FromPattern). Default: topology.Earliest,
// as in Kafka Streams.
func WithOffsetReset(r topology.OffsetReset) Option {
	return optFn(func(o *options) { o.reset = r })
}

// WithTimestampExtractor sets how a source computes a record's timestamp
// from the decoded record (whose Timestamp is the Kafka record's) and the
// task's stream time (From, FromTopics, FromPattern). K and V must be the
// source's types, or Build fails.
//
// Default: the Kafka record's timestamp, and a negative one fails the record
// with a *topology.ProcessingError naming the source, handed to the
// processing error handler (Kafka Streams' default extractor,
// FailOnInvalidTimestamp, fails the same way). An extractor sees negative
// Kafka timestamps and may replace them; a negative extracted timestamp
// drops the record with a warning, as in Kafka Streams.
//
// Limit: when a task reads several partitions, it picks the next record by
// the Kafka timestamps at the heads of its partitions, not by extracted ones.
func WithTimestampExtractor[K, V any](fn func(rec topology.Record[K, V], streamTime int64) int64) Option {
	return optFn(func(o *options) { o.timestamps = fn })
}

// WithPartitioner chooses the output partition of each record (To, and
// Repartition): it gets the full topic name, key, value and partition count
// and returns a partition in [0, numPartitions). K and V must be the
// stream's types, or Build fails. Default: the murmur2 hash of the
// serialized key, as Kafka's default partitioner (records with a null key
// are spread sticky-randomly).
func WithPartitioner[K, V any](fn func(topic string, key K, value V, numPartitions int32) int32) Option {
	return optFn(func(o *options) { o.partitioner = fn })
}

// WithPartitions sets the partition count of a repartition topic
// (Repartition). Default: the partition count of the largest source topic
// of the subtopology that writes it.
func WithPartitions(n int32) Option { return optFn(func(o *options) { o.partitions = n }) }

func (b *Builder) options(opts []Option) *options {
	o := &options{}
	for _, opt := range opts {
		if opt != nil {
			opt.apply(o)
		}
	}
	return o
}

// optionFunc returns a typed function option; ok is false when it is unset.
// A function of the wrong type is a build error naming the node.
func optionFunc[F any](b *Builder, node string, v any, what string) (fn F, ok bool) {
	if v == nil {
		return fn, false
	}
	fn, ok = v.(F)
	if !ok {
		b.fail(node, fmt.Errorf("%s has type %T, want %T", what, v, fn))
	}
	return fn, ok
}

// isNil reports whether v is nil or a nil pointer, func, map, slice or
// interface value.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Func, reflect.Map, reflect.Slice, reflect.Interface, reflect.Chan:
		return rv.IsNil()
	}
	return false
}
