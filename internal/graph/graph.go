// Package graph is the compiled, untyped processing graph that package
// stream builds and the runtime (and streamtest) executes: nodes with their
// Make functions, stores, internal topics and the split into subtopologies.
// Users see it only as the opaque topology.Topology (see Of and
// Graph.Topology); Kafka Streams keeps the same plumbing in
// processor.internals.
package graph

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/topoaccess"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kgo"
)

// NodeKind is the role of a node in the graph.
type NodeKind int

const (
	// SourceKind nodes read records from topics.
	SourceKind NodeKind = iota
	// ProcessorKind nodes transform records.
	ProcessorKind
	// SinkKind nodes write records to a topic.
	SinkKind
)

// Child is a built child node instance handed to its parent's Make function.
type Child struct {
	Name     string
	Instance any
}

// Node is one vertex of a topology. Package stream fills nodes in; the
// runtime reads them. A Node must not be modified after New.
type Node struct {
	// Name is unique in the topology; it appears in Describe, logs and errors.
	Name string
	Kind NodeKind
	// Parents names the nodes this node receives records from, all added
	// before it. Sources have none.
	Parents []string

	// Topics are the topics a source reads (internal topics by their
	// unprefixed name, e.g. "agg-repartition"), or the one topic a sink
	// writes ("" for a sink that picks its topic per record).
	Topics []string
	// Pattern, for a source, subscribes to every topic whose whole name
	// matches; Topics is then empty.
	Pattern *regexp.Regexp
	// Reset is a source's offset reset policy.
	Reset topology.OffsetReset
	// Stores names the state stores the node uses.
	Stores []string

	// Make builds the node's instance for one task, given its children's
	// instances in the order of Graph.Children. A source's instance must
	// implement Source; any instance may implement Lifecycle.
	Make func(tc TaskContext, children []Child) (any, error)
}

// Source is the instance of a source node: it decodes a raw Kafka record
// and forwards the typed record to its children. Decoding errors are
// returned as *DeserializationError before anything is forwarded.
type Source interface {
	Process(raw *kgo.Record) error
}

// Lifecycle is implemented by node instances that need to start and stop
// with their task. Init runs after every instance of the task is built, in
// topological order; Close runs when the task closes, also after failures.
type Lifecycle interface {
	Init() error
	Close() error
}

// OutRecord is a serialized record a sink hands to the runtime.
type OutRecord struct {
	Topic string
	// Partition is the target partition, or -1 to partition by the key's
	// murmur2 hash as Kafka's default partitioner does.
	Partition int32
	Key       []byte
	Value     []byte
	Headers   []topology.Header
	Timestamp int64
	// Origin is the input record being processed when this one was
	// produced, for the error if Kafka refuses it; nil outside a record
	// (punctuators, cache flushes at commit). Set by the runtime's task.
	Origin *kgo.Record
}

// TaskContext is implemented by the runtime (and by package streamtest) for
// each task; node instances use it. Like the task, it is used from one
// goroutine only.
type TaskContext interface {
	TaskID() topology.TaskID
	AppID() string
	// RecordMetadata locates the input record being processed; ok is false
	// during punctuation.
	RecordMetadata() (md topology.RecordMetadata, ok bool)
	StreamTime() int64
	// AdvanceStreamTime is called by sources with each record's timestamp
	// before they forward it; stream time never goes backwards. It also
	// sets the record time (see SwapRecordTime).
	AdvanceStreamTime(ts int64)
	// SwapRecordTime sets the timestamp of the record being processed,
	// which changelog records and cached writes take, and returns the
	// previous one. A processor forwarding a record with another timestamp
	// sets it for its children and restores it after (Kafka Streams'
	// record context).
	SwapRecordTime(ts int64) int64
	WallClockTime() time.Time
	// Schedule registers a punctuator of the named node.
	Schedule(node string, interval time.Duration, typ topology.PunctuationType, fn topology.Punctuator) (topology.Cancellable, error)
	// RequestCommit asks for a commit as soon as possible.
	RequestCommit()
	// RecordSkipped reports an input record the node dropped on purpose,
	// by reason (the skipped-records metric and event); the node logs it.
	RecordSkipped(node, reason string)
	// Send produces a record. Delivery errors are reported asynchronously
	// to the production error handler; a returned error fails the record.
	Send(rec OutRecord) error
	// PartitionCount returns the number of partitions of a topic (full name).
	PartitionCount(topic string) (int32, error)
	// TopicName returns the full name of a topic named in the topology:
	// internal topics get the "<app-id>-" prefix, others are unchanged.
	TopicName(name string) string
	Logger() *slog.Logger
	// Store returns the task's instance of a state store of the topology,
	// built by its StoreSpec.Wrap. A node may take the store in Make, but
	// must not use it before Init: stores are restored between Make and
	// Init.
	Store(name string) (state.Store, error)
	// HandleFlushError passes an error that nodes downstream of a record
	// cache flush or eviction returned to the processing error handler:
	// it returns nil when the handler says to continue (the change is
	// logged and counted as skipped), else the error to fail with.
	HandleFlushError(err error) error
}

// InternalTopicKind says what an internal topic is for.
type InternalTopicKind int

const (
	// Repartition topics carry records between subtopologies after a key
	// change.
	Repartition InternalTopicKind = iota
	// Changelog topics back state stores (compacted).
	Changelog
)

// InternalTopic describes a topic the application creates and owns. Its
// full name is "<app-id>-" + Name.
type InternalTopic struct {
	Name string
	Kind InternalTopicKind
	// Generated is true when Name derives from a generated operator name,
	// not one the user gave (Named, Materialized): renumbering the
	// operators would rename the topic.
	Generated bool
	// Partitions is the partition count; 0 means as many as the largest
	// source topic of the subtopology that writes it.
	Partitions int32
	// Configs are extra topic configs.
	Configs map[string]string
}

// StoreSpec describes a state store of the topology. Package stream fills
// it in; each task builds its own instance. Every node that uses the store
// lists it in Node.Stores, and all of them end up in one subtopology.
type StoreSpec struct {
	Name   string
	Engine state.Engine
	// Logged stores write every change to the compacted changelog topic
	// "<app-id>-<Name>-changelog" and are restored from it.
	Logged bool
	// ChangelogConfigs are extra configs of the changelog topic.
	ChangelogConfigs map[string]string
	// Caching puts the task's record cache in front of the store.
	Caching bool
	// Generated is true when Name was generated, not given by the user.
	Generated bool
	// Wrap builds the typed store processors use over the task's byte
	// store (state.NewKeyValueStore with the store's serdes).
	Wrap func(s state.BytesStore) state.Store
}

// ChangelogTopic returns the unprefixed name of a store's changelog topic,
// "<store>-changelog".
func ChangelogTopic(store string) string { return store + "-changelog" }

// Subtopology is a connected component of the graph (nodes sharing a store
// are connected); it runs as one task per partition of its source topics.
type Subtopology struct {
	ID int
	// Nodes in topological order (every parent before its children).
	Nodes []*Node
	// Stores are the stores its nodes use, in the order of the topology's
	// stores.
	Stores []*StoreSpec
}

// Sources returns the subtopology's source nodes.
func (s *Subtopology) Sources() []*Node {
	var out []*Node
	for _, n := range s.Nodes {
		if n.Kind == SourceKind {
			out = append(out, n)
		}
	}
	return out
}

// SourceTopics returns the sorted topic names the subtopology's sources read
// (internal topics unprefixed); pattern sources are not included.
func (s *Subtopology) SourceTopics() []string {
	var out []string
	for _, n := range s.Sources() {
		out = append(out, n.Topics...)
	}
	sort.Strings(out)
	return out
}

// Graph is a validated, immutable processing graph. It is safe for
// concurrent use.
type Graph struct {
	nodes    []*Node
	byName   map[string]*Node
	children map[string][]string
	subs     []*Subtopology
	subOf    map[string]int
	storeSub map[string]int // store name -> subtopology
	internal []InternalTopic
	stores   []*StoreSpec
	// patterns holds the whole-name (anchored) form of each pattern source.
	patterns map[*Node]*regexp.Regexp
}

// New validates nodes (given in the order they were added, parents first),
// internal topics and stores, and returns the topology. Logged stores get
// their changelog topics added to the internal topics. It reports every
// problem at once as joined *NodeError values, each naming its node.
func New(nodes []*Node, internal []InternalTopic, stores []*StoreSpec) (*Graph, error) {
	t := &Graph{
		byName:   make(map[string]*Node, len(nodes)),
		children: make(map[string][]string),
		subOf:    make(map[string]int),
		storeSub: make(map[string]int),
		internal: slices.Clone(internal),
		stores:   slices.Clone(stores),
		patterns: make(map[*Node]*regexp.Regexp),
	}
	var errs []error
	storeNames := map[string]bool{}
	for _, st := range stores {
		switch {
		case !ValidName(st.Name):
			errs = append(errs, &topology.NodeError{Node: st.Name, Err: errors.New("store name must be non-empty and use only letters, digits, '.', '_' and '-'")})
		case storeNames[st.Name]:
			errs = append(errs, &topology.NodeError{Node: st.Name, Err: errors.New("store defined twice")})
		case st.Wrap == nil:
			errs = append(errs, &topology.NodeError{Node: st.Name, Err: errors.New("store has no Wrap function")})
		}
		storeNames[st.Name] = true
		if st.Logged {
			t.internal = append(t.internal, InternalTopic{Name: ChangelogTopic(st.Name), Kind: Changelog, Configs: st.ChangelogConfigs, Generated: st.Generated})
		}
	}
	fail := func(n, format string, args ...any) {
		errs = append(errs, &topology.NodeError{Node: n, Err: fmt.Errorf(format, args...)})
	}
	topicOwner := map[string]string{}
	for _, n := range nodes {
		if n.Name == "" {
			fail("<unnamed>", "node has no name")
			continue
		}
		if _, dup := t.byName[n.Name]; dup {
			fail(n.Name, "name is used by another node")
			continue
		}
		if n.Make == nil {
			fail(n.Name, "node has no Make function")
		}
		switch n.Kind {
		case SourceKind:
			if len(n.Parents) > 0 {
				fail(n.Name, "a source cannot have parents")
			}
			if len(n.Topics) == 0 && n.Pattern == nil {
				fail(n.Name, "source has no topics and no pattern")
			}
			if len(n.Topics) > 0 && n.Pattern != nil {
				fail(n.Name, "source has both topics and a pattern")
			}
			for _, topic := range n.Topics {
				if topic == "" {
					fail(n.Name, "empty topic name")
				} else if other, ok := topicOwner[topic]; ok {
					fail(n.Name, "topic %q is already read by source %q", topic, other)
				} else {
					topicOwner[topic] = n.Name
				}
			}
		case ProcessorKind, SinkKind:
			if len(n.Parents) == 0 {
				fail(n.Name, "node has no parent")
			}
			if n.Kind == SinkKind && len(n.Topics) > 1 {
				fail(n.Name, "a sink writes one topic, got %d", len(n.Topics))
			}
		default:
			fail(n.Name, "unknown node kind %d", n.Kind)
		}
		for _, p := range n.Parents {
			pn, ok := t.byName[p]
			switch {
			case !ok:
				fail(n.Name, "parent %q is not defined before it", p)
			case pn.Kind == SinkKind:
				fail(n.Name, "parent %q is a sink", p)
			default:
				t.children[p] = append(t.children[p], n.Name)
			}
		}
		for _, st := range n.Stores {
			if !storeNames[st] {
				fail(n.Name, "uses store %q, which is not defined", st)
			}
		}
		if n.Pattern != nil {
			// Kafka's pattern subscription matches whole topic names.
			t.patterns[n] = regexp.MustCompile("^(?:" + n.Pattern.String() + ")$")
		}
		t.byName[n.Name] = n
		t.nodes = append(t.nodes, n)
	}
	seen := map[string]bool{}
	for _, it := range t.internal {
		if seen[it.Name] {
			errs = append(errs, &topology.NodeError{Node: it.Name, Err: errors.New("internal topic defined twice")})
		}
		seen[it.Name] = true
		if it.Partitions < 0 {
			errs = append(errs, &topology.NodeError{Node: it.Name, Err: fmt.Errorf("negative partition count %d", it.Partitions)})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	t.split()
	return t, nil
}

// split computes the subtopologies: connected components over parent edges,
// numbered in the order of their first node.
func (t *Graph) split() {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if p, ok := parent[x]; ok && p != x {
			r := find(p)
			parent[x] = r
			return r
		}
		return x
	}
	for _, n := range t.nodes {
		parent[n.Name] = n.Name
		for _, p := range n.Parents {
			parent[find(n.Name)] = find(p)
		}
	}
	// Nodes sharing a store belong together; "\x00store:" cannot clash
	// with a node name.
	for _, n := range t.nodes {
		for _, st := range n.Stores {
			key := "\x00store:" + st
			if _, ok := parent[key]; !ok {
				parent[key] = key
			}
			parent[find(n.Name)] = find(key)
		}
	}
	ids := map[string]int{}
	for _, n := range t.nodes {
		root := find(n.Name)
		id, ok := ids[root]
		if !ok {
			id = len(t.subs)
			ids[root] = id
			t.subs = append(t.subs, &Subtopology{ID: id})
		}
		t.subs[id].Nodes = append(t.subs[id].Nodes, n)
		t.subOf[n.Name] = id
	}
	for _, st := range t.stores {
		for _, n := range t.nodes {
			if slices.Contains(n.Stores, st.Name) {
				sub := t.subs[t.subOf[n.Name]]
				sub.Stores = append(sub.Stores, st)
				t.storeSub[st.Name] = sub.ID
				break
			}
		}
	}
}

// Stores returns the topology's stores in the order they were added.
func (t *Graph) Stores() []*StoreSpec { return t.stores }

// Store returns the named store, or nil.
func (t *Graph) Store(name string) *StoreSpec {
	for _, st := range t.stores {
		if st.Name == name {
			return st
		}
	}
	return nil
}

// Nodes returns every node in the order it was added.
func (t *Graph) Nodes() []*Node { return t.nodes }

// Node returns the named node, or nil.
func (t *Graph) Node(name string) *Node { return t.byName[name] }

// Children returns the names of a node's children in the order they were
// added; Make receives child instances in this order.
func (t *Graph) Children(name string) []string { return t.children[name] }

// Subtopologies returns the subtopologies ordered by ID.
func (t *Graph) Subtopologies() []*Subtopology { return t.subs }

// SubtopologyOf returns the ID of the subtopology that holds the node.
func (t *Graph) SubtopologyOf(node string) int { return t.subOf[node] }

// TopicName returns the full name of a topic named in the topology for the
// application appID: internal topics get the "<appID>-" prefix, other
// topics are unchanged.
func (t *Graph) TopicName(appID, name string) string {
	if _, ok := t.InternalTopic(name); ok {
		return appID + "-" + name
	}
	return name
}

// SourceFor returns the source node that reads the topic (full name) in the
// application appID — by name, or by a pattern matching the whole name —
// or nil when no source reads it.
func (t *Graph) SourceFor(appID, topic string) *Node {
	for _, n := range t.nodes {
		if n.Kind != SourceKind {
			continue
		}
		if re := t.patterns[n]; re != nil && re.MatchString(topic) {
			return n
		}
		for _, name := range n.Topics {
			if t.TopicName(appID, name) == topic {
				return n
			}
		}
	}
	return nil
}

// InternalTopics returns the topics the application creates.
func (t *Graph) InternalTopics() []InternalTopic { return t.internal }

// InternalTopic returns the internal topic with the unprefixed name.
func (t *Graph) InternalTopic(name string) (InternalTopic, bool) {
	for _, it := range t.internal {
		if it.Name == name {
			return it, true
		}
	}
	return InternalTopic{}, false
}

// Writers returns the IDs of the subtopologies whose sinks write the topic,
// or, for a changelog topic, the subtopology of its store.
func (t *Graph) Writers(topic string) []int {
	var ids []int
	if it, ok := t.InternalTopic(topic); ok && it.Kind == Changelog {
		if sub, ok := t.storeSub[strings.TrimSuffix(topic, "-changelog")]; ok {
			return []int{sub}
		}
	}
	for _, n := range t.nodes {
		if n.Kind == SinkKind && slices.Contains(n.Topics, topic) && !slices.Contains(ids, t.subOf[n.Name]) {
			ids = append(ids, t.subOf[n.Name])
		}
	}
	return ids
}

// ValidName reports whether s can be part of a Kafka topic name: non-empty,
// only letters, digits, '.', '_' and '-'. Application ids, store names and
// internal topic names must be valid names.
func ValidName(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == ""
}

// Topology returns g as the public, opaque topology.Topology.
func (g *Graph) Topology() *topology.Topology {
	return topoaccess.Wrap(g).(*topology.Topology)
}

// Of returns the graph a topology built by package stream wraps, or nil
// for a nil or zero Topology (one not made by stream.Builder.Build).
func Of(t *topology.Topology) *Graph {
	if t == nil {
		return nil
	}
	g, _ := topoaccess.Unwrap(t).(*Graph)
	return g
}
