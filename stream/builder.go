package stream

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/topology"
)

// Builder collects the operators of a topology. Operators are added with the
// package functions and KStream methods; Build validates and compiles them.
// A Builder is not safe for concurrent use and does no I/O.
type Builder struct {
	nodes    []*graph.Node
	internal []graph.InternalTopic
	stores   []*graph.StoreSpec
	errs     []error
	names    map[string]bool
	// storeOwner says who defined each store, for duplicate errors.
	storeOwner map[string]string
	seq        int
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{names: map[string]bool{}, storeOwner: map[string]string{}}
}

// Build validates the topology and compiles it. It reports every problem at
// once (joined errors that each name their node and match
// errors.Is(err, topology.ErrInvalid)). A Builder can be built more than
// once, but build when the topology is complete: operators added afterwards
// (for example more Split branches) can change a topology already built.
func (b *Builder) Build() (*topology.Topology, error) {
	nodes := make([]*graph.Node, len(b.nodes))
	for i, n := range b.nodes {
		c := *n
		nodes[i] = &c
	}
	g, err := graph.New(nodes, b.internal, b.stores)
	if err = errors.Join(append(append([]error(nil), b.errs...), err)...); err != nil {
		return nil, err
	}
	return g.Topology(), nil
}

// nodeName returns the user's name for an operator or Kafka Streams'
// generated one, e.g. "KSTREAM-FILTER-0000000003". Like Kafka Streams'
// NamedInternal.orElseGenerateWithPrefix, it advances the counter whether
// the operator is named or not, so naming one operator does not renumber
// the others. A few operators advance it differently, as Kafka Streams does:
// every Split branch takes one number, Repartition (and a grouping's
// repartition) takes three (sink, filter, source) plus one for its topic
// name when unnamed, and a generated store name takes one (storeName).
func (b *Builder) nodeName(o *options, prefix string) string {
	return nameOr(o.name, b.generate(prefix))
}

// tableNodeName is nodeName for KTable operators, whose generated names
// are "KTABLE-<prefix>-<counter>".
func (b *Builder) tableNodeName(o *options, prefix string) string {
	return nameOr(o.name, b.newName("KTABLE-"+prefix+"-"))
}

// suffixed returns name+suffix when name is set, else a generated
// "KSTREAM-<prefix>-<counter>"; it advances the counter either way (Kafka
// Streams' NamedInternal.suffixWithOrElseGet).
func (b *Builder) suffixed(name, suffix, prefix string) string {
	generated := b.generate(prefix)
	if name != "" {
		return name + suffix
	}
	return generated
}

// nameOr returns name, or generated when name is empty.
func nameOr(name, generated string) string {
	if name != "" {
		return name
	}
	return generated
}

// generate advances the counter and returns the generated name
// "KSTREAM-<prefix>-<counter>" (Kafka Streams' newProcessorName).
func (b *Builder) generate(prefix string) string { return b.newName("KSTREAM-" + prefix + "-") }

// newName advances the counter and returns prefix followed by the counter
// in ten digits.
func (b *Builder) newName(prefix string) string {
	seq := b.seq
	b.seq++
	return fmt.Sprintf("%s%010d", prefix, seq)
}

// add appends a node; it records a build error (naming the node) for a
// duplicate name.
func (b *Builder) add(n *graph.Node) {
	if b.names[n.Name] {
		b.fail(n.Name, errors.New("name is used by another operator"))
		return
	}
	b.names[n.Name] = true
	b.nodes = append(b.nodes, n)
}

// fail records a build error about a node.
func (b *Builder) fail(node string, err error) {
	b.errs = append(b.errs, &topology.NodeError{Node: node, Err: err})
}

// checkNil records a build error for each nil argument, by name.
func (b *Builder) checkNil(node string, args ...any) {
	for i := 0; i+1 < len(args); i += 2 {
		if isNil(args[i+1]) {
			b.fail(node, fmt.Errorf("%s is nil", args[i]))
		}
	}
}

// KStream is a typed stream of records: an unbounded sequence of key-value
// pairs. It is a handle on a node of its Builder; copying it is cheap, and
// every operator on it adds a child node.
type KStream[K, V any] struct {
	pipe[K, V]
}

// pipe is a handle on a node of a Builder whose records have types K and
// V: a KStream without its methods. The package's plumbing passes pipes,
// because a KStream method that reaches a KTable (GroupByKey, then Count)
// makes every KStream[K, change[V]] that table code would create lead to a
// KStream[K, change[change[V]]], and so on: Go rejects that as an
// instantiation cycle.
type pipe[K, V any] struct {
	b    *Builder
	node string
	// keyChanged is true when an upstream operator may have changed the key,
	// so grouping downstream needs a repartition (Kafka Streams'
	// repartitionRequired).
	keyChanged bool
}

// streamOf returns the KStream of p.
func streamOf[K, V any](p pipe[K, V]) KStream[K, V] { return KStream[K, V]{p} }

// From reads one topic as a stream, decoding keys and values with the given
// serdes. Options: Named, WithOffsetReset; for a timestamp extractor, use
// WithTimestampExtractor(b, fn).From.
func From[K, V any](b *Builder, topic string, keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...SourceOption) KStream[K, V] {
	return fromTopics(b, []string{topic}, nil, keySerde, valueSerde, nil, opts)
}

// FromTopics reads several topics as one stream. Topics of one stream (and
// of every stream merged or joined with it) must have the same number of
// partitions: the application checks this at start.
func FromTopics[K, V any](b *Builder, topics []string, keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...SourceOption) KStream[K, V] {
	return fromTopics(b, topics, nil, keySerde, valueSerde, nil, opts)
}

// FromPattern reads every topic whose whole name matches re, including
// topics created later (picked up at the next metadata refresh).
func FromPattern[K, V any](b *Builder, re *regexp.Regexp, keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...SourceOption) KStream[K, V] {
	return fromTopics(b, nil, re, keySerde, valueSerde, nil, opts)
}

// fromTopics adds the source node of From, FromTopics or FromPattern.
func fromTopics[K, V any](b *Builder, topics []string, re *regexp.Regexp, ks serde.Serde[K], vs serde.Serde[V], extract TimestampExtractor[K, V], opts []SourceOption) KStream[K, V] {
	o := optionsOf(opts)
	return streamOf(addSource(b, b.nodeName(o, "SOURCE"), topics, re, ks, vs, o.reset, extract, false))
}

// TimestampExtractor computes a record's timestamp from the decoded record
// (whose Timestamp is the Kafka record's) and the task's stream time
// (Kafka Streams' TimestampExtractor).
type TimestampExtractor[K, V any] func(rec topology.Record[K, V], streamTime int64) int64

// TimestampedSources adds sources that compute record timestamps with a
// TimestampExtractor; get one from WithTimestampExtractor. Its methods are
// the source functions of the same names, and take the same options.
type TimestampedSources[K, V any] struct {
	b       *Builder
	extract TimestampExtractor[K, V]
}

// WithTimestampExtractor returns the source functions of b with fn as their
// timestamp extractor (Kafka Streams' Consumed.withTimestampExtractor):
//
//	s := stream.WithTimestampExtractor(b, fn).From("clicks", serde.String, clickSerde)
//
// It is not an option because K and V must be the source's types: here the
// serdes of a source must match fn's types, or the program does not
// compile. A nil fn means the default.
//
// Default (the plain source functions): the Kafka record's timestamp, and a
// negative one fails the record with a *topology.ProcessingError naming the
// source, handed to the processing error handler (Kafka Streams' default
// extractor, FailOnInvalidTimestamp, fails the same way). An extractor sees
// negative Kafka timestamps and may replace them; a negative extracted
// timestamp drops the record with a warning, as in Kafka Streams.
//
// Limit: when a task reads several partitions, it picks the next record by
// the Kafka timestamps at the heads of its partitions, not by extracted ones.
func WithTimestampExtractor[K, V any](b *Builder, fn TimestampExtractor[K, V]) TimestampedSources[K, V] {
	return TimestampedSources[K, V]{b: b, extract: fn}
}

// From is From with the extractor.
func (ts TimestampedSources[K, V]) From(topic string, keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...SourceOption) KStream[K, V] {
	return ts.FromTopics([]string{topic}, keySerde, valueSerde, opts...)
}

// FromTopics is FromTopics with the extractor.
func (ts TimestampedSources[K, V]) FromTopics(topics []string, keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...SourceOption) KStream[K, V] {
	return fromTopics(ts.b, topics, nil, keySerde, valueSerde, ts.extract, opts)
}

// FromPattern is FromPattern with the extractor.
func (ts TimestampedSources[K, V]) FromPattern(re *regexp.Regexp, keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...SourceOption) KStream[K, V] {
	return fromTopics(ts.b, nil, re, keySerde, valueSerde, ts.extract, opts)
}

// Table is Table with the extractor.
func (ts TimestampedSources[K, V]) Table(topic string, keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...TableOption) KTable[K, V] {
	return table(ts.b, topic, keySerde, valueSerde, ts.extract, opts)
}

// addSource adds a source node named name, starting at reset and computing
// timestamps with extract (nil: the Kafka record's). With dropNullKeys the
// source drops (logs and counts) records whose Kafka key is null, as a
// table source does.
func addSource[K, V any](b *Builder, name string, topics []string, re *regexp.Regexp, ks serde.Serde[K], vs serde.Serde[V], reset topology.OffsetReset, extract TimestampExtractor[K, V], dropNullKeys bool) pipe[K, V] {
	b.checkNil(name, "key serde", ks, "value serde", vs)
	b.add(&graph.Node{
		Name: name, Kind: graph.SourceKind, Topics: topics, Pattern: re, Reset: reset,
		Make: func(tc graph.TaskContext, children []graph.Child) (any, error) {
			to, err := receivers[K, V](children)
			return &sourceNode[K, V]{name: name, tc: tc, ks: ks, vs: vs, extract: extract, dropNullKeys: dropNullKeys, to: to}, err
		},
	})
	return pipe[K, V]{b: b, node: name}
}

// child adds a processor node under s and returns its stream handle.
func child[K, V, KR, VR any](s pipe[K, V], name string, keyChanged bool, make func(tc graph.TaskContext, to []receiver[KR, VR]) any) pipe[KR, VR] {
	s.b.add(&graph.Node{
		Name: name, Kind: graph.ProcessorKind, Parents: []string{s.node},
		Make: func(tc graph.TaskContext, children []graph.Child) (any, error) {
			to, err := receivers[KR, VR](children)
			return make(tc, to), err
		},
	})
	return pipe[KR, VR]{b: s.b, node: name, keyChanged: keyChanged}
}

// receivers converts child instances into typed receivers. A mismatch is a
// bug in this package, reported as an error rather than a panic.
func receivers[K, V any](children []graph.Child) ([]receiver[K, V], error) {
	out := make([]receiver[K, V], len(children))
	for i, c := range children {
		r, ok := c.Instance.(receiver[K, V])
		if !ok {
			return nil, fmt.Errorf("stream: child %q does not accept %T", c.Name, topology.Record[K, V]{})
		}
		out[i] = r
	}
	return out, nil
}
