package stream

import (
	"reflect"

	"github.com/runnel-dev/runnel/topology"
)

// option is implemented by every option; each family adds its marker
// method, so that only the options of a family satisfy it.
type option interface{ apply(*options) }

// Option is the family of options every operator takes: Named is its only
// member. Stateless operators (Filter, Map, Peek, Split, Merge, ToStream,
// TableMapValues...) and groupings (GroupByKey, GroupBy, TableGroupBy) take
// only it.
//
// Operator options are typed per family: an operator takes the options of its family
// only, so an option it would not use, such as a store option on Filter, is
// a compile error rather than silently ignored. Named belongs to every
// family but StoreOption (AddKeyValueStore's name is its argument).
//
//	family              operators                            options
//	Option              stateless operators, groupings       Named
//	SourceOption        From, FromTopics, FromPattern        Named, WithOffsetReset
//	TableOption         Table                                SourceOption and MaterializedOption
//	SinkOption          To, ToFunc                           Named
//	RepartitionOption   Repartition                          Named, WithPartitions
//	MaterializedOption  Count, Reduce, Aggregate...          Named, Materialized, StoreOption
//	StoreOption         AddKeyValueStore                     WithInMemoryStore, WithLoggingDisabled,
//	                                                         WithChangelogConfigs, WithCaching*
//	ProcessorOption     Process, ProcessValues               Named, WithStores
//
// Callbacks typed by the stream's key and value types are not options: Go
// has no generic methods, so one option list cannot both take Named for
// every K and V and reject a callback of the wrong K or V. They are given
// where the types are fixed instead, and a callback of the wrong types does
// not compile: WithTimestampExtractor(b, fn) returns the source functions
// with fn (Kafka Streams' Consumed.withTimestampExtractor), and
// KStream.WithPartitioner(fn) the sinks with fn (Produced and
// Repartitioned.streamPartitioner).
//
// A nil option is ignored.
type Option interface {
	SourceOption
	SinkOption
	RepartitionOption
	MaterializedOption
	ProcessorOption
	anyOperator()
}

// SourceOption configures a stream source (From, FromTopics, FromPattern):
// Named, WithOffsetReset.
type SourceOption interface {
	TableOption
	source()
}

// TableOption configures Table, which is a source and a materialized
// table: every SourceOption and MaterializedOption.
type TableOption interface {
	option
	table()
}

// SinkOption configures a sink (To, ToFunc): Named.
type SinkOption interface {
	option
	sink()
}

// RepartitionOption configures Repartition: Named, WithPartitions.
type RepartitionOption interface {
	option
	repartition()
}

// MaterializedOption configures an operator that keeps its result in a
// state store (Kafka Streams' Materialized plus Named): the aggregations
// Count, Reduce, Aggregate and TableAggregate, and Table. Members: Named,
// Materialized and every StoreOption.
type MaterializedOption interface {
	TableOption
	materialized()
}

// StoreOption configures a state store, of a DSL operator or added with
// AddKeyValueStore: WithInMemoryStore, WithLoggingDisabled,
// WithChangelogConfigs, WithCachingDisabled, WithCachingEnabled.
type StoreOption interface {
	MaterializedOption
	store()
}

// ProcessorOption configures Process and ProcessValues: Named, WithStores.
type ProcessorOption interface {
	option
	processor()
}

type options struct {
	name       string
	reset      topology.OffsetReset
	partitions int32
	store      storeOptions
	stores     []string // WithStores
}

// named implements every family but StoreOption.
type named string

func (n named) apply(o *options) { o.name = string(n) }
func (named) anyOperator()       {}
func (named) source()            {}
func (named) table()             {}
func (named) sink()              {}
func (named) repartition()       {}
func (named) materialized()      {}
func (named) processor()         {}

// sourceOpt is a SourceOption (and so a TableOption).
type sourceOpt func(*options)

func (f sourceOpt) apply(o *options) { f(o) }
func (sourceOpt) source()            {}
func (sourceOpt) table()             {}

// repartitionOpt is a RepartitionOption.
type repartitionOpt func(*options)

func (f repartitionOpt) apply(o *options) { f(o) }
func (repartitionOpt) repartition()       {}

// processorOpt is a ProcessorOption.
type processorOpt func(*options)

func (f processorOpt) apply(o *options) { f(o) }
func (processorOpt) processor()         {}

// Named names an operator (any operator). The name appears in Describe,
// logs and errors; for Split it also prefixes the branch names, for
// Repartition it names the internal topic and the nodes around it instead
// of one node, for GroupBy, GroupByKey and TableGroupBy it names the
// repartition topic of their aggregations (Kafka Streams' Grouped.as), and
// for Table it also names the source node ("<name>-source"). Default: a
// generated Kafka Streams-style name such as "KSTREAM-FILTER-0000000003",
// which changes when operators are added before it.
func Named(name string) Option { return named(name) }

// WithOffsetReset sets where a source starts reading partitions that have no
// committed offset (From, FromTopics, FromPattern, Table). Default:
// topology.Earliest, as in Kafka Streams.
func WithOffsetReset(r topology.OffsetReset) SourceOption {
	return sourceOpt(func(o *options) { o.reset = r })
}

// WithPartitions sets the partition count of a repartition topic
// (Repartition). Default: the partition count of the largest source topic
// of the subtopology that writes it.
func WithPartitions(n int32) RepartitionOption {
	return repartitionOpt(func(o *options) { o.partitions = n })
}

// optionsOf applies opts in order; nil options are skipped.
func optionsOf[O option](opts []O) *options {
	o := &options{}
	for _, opt := range opts {
		if any(opt) != nil {
			opt.apply(o)
		}
	}
	return o
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
