package stream

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/topology"
)

// ErrStoreNotConnected is wrapped by the error ProcessorContext.Store
// returns for a store the processor is not connected to with WithStores.
var ErrStoreNotConnected = errors.New("stream: processor is not connected to the store")

// storeOptions are the store options of an operator (Kafka Streams'
// Materialized, or a StoreBuilder's settings).
type storeOptions struct {
	name       string // Materialized
	engine     state.Engine
	noLogging  bool
	changelog  map[string]string
	caching    caching
	configured bool // a store option was given (Kafka Streams has a Materialized)
}

// caching is a store's record cache setting; the zero value is the
// default, which depends on who defines the store.
type caching int8

const (
	cachingOn caching = iota + 1
	cachingOff
)

// storeOpt is a StoreOption (and so a MaterializedOption and TableOption).
type storeOpt func(*storeOptions)

func (f storeOpt) apply(o *options) {
	f(&o.store)
	o.store.configured = true
}
func (storeOpt) store()        {}
func (storeOpt) materialized() {}
func (storeOpt) table()        {}

// materializedOpt is a MaterializedOption that is not a StoreOption.
type materializedOpt func(*storeOptions)

func (f materializedOpt) apply(o *options) { storeOpt(f).apply(o) }
func (materializedOpt) materialized()      {}
func (materializedOpt) table()             {}

// Materialized names the state store of a stateful DSL operator (Table,
// the Count, Reduce and Aggregate of KGroupedStream, and the Count, Reduce
// and TableAggregate of KGroupedTable), as Kafka Streams' Materialized.as. The name must be unique in the topology
// and a valid topic name part (letters, digits, '.', '_', '-'), because the
// store's changelog topic is "<app-id>-<storeName>-changelog" and, when the
// aggregation needs a repartition topic and its grouping is not named (Named
// on GroupBy, GroupByKey or TableGroupBy), that topic is
// "<app-id>-<storeName>-repartition".
//
// Default: a generated name, "KSTREAM-AGGREGATE-STATE-STORE-0000000003" for
// example ("<topic>-STATE-STORE-0000000000" for Table), which changes when
// operators are added before it, and the changelog and repartition topics
// with it: name the stores of applications that will evolve (see
// Config.EnsureExplicitInternalResourceNaming).
func Materialized(storeName string) MaterializedOption {
	return materializedOpt(func(s *storeOptions) { s.name = storeName })
}

// WithInMemoryStore keeps the store in memory (state.InMemory) instead of
// in the instance's Pebble database (state.Persistent, the default). A
// logged in-memory store is restored in full from its changelog whenever its
// task starts. For DSL stores (see Materialized) and AddKeyValueStore.
func WithInMemoryStore() StoreOption {
	return storeOpt(func(s *storeOptions) { s.engine = state.InMemory })
}

// WithLoggingDisabled turns off the store's changelog topic (Kafka Streams'
// withLoggingDisabled): a persistent store then keeps only what this
// instance wrote locally, and an in-memory one starts empty, whenever its
// task starts. Default: every store is logged to the compacted topic
// "<app-id>-<store>-changelog" and restored from it. For DSL stores and
// AddKeyValueStore.
func WithLoggingDisabled() StoreOption {
	return storeOpt(func(s *storeOptions) { s.noLogging = true })
}

// WithChangelogConfigs sets extra topic configs of the store's changelog
// topic, such as "min.insync.replicas" or "segment.bytes" (Kafka Streams'
// withLoggingEnabled(config)). The map is copied. Default: none besides
// compaction. Ignored with WithLoggingDisabled. For DSL stores and
// AddKeyValueStore.
func WithChangelogConfigs(configs map[string]string) StoreOption {
	configs = maps.Clone(configs)
	return storeOpt(func(s *storeOptions) { s.changelog = configs })
}

// WithCachingDisabled turns off the record cache of a store (Kafka
// Streams' withCachingDisabled), so every update of a DSL store is written
// through and forwarded downstream at once.
//
// Default for DSL stores: cached. Updates of a key are then collapsed until
// the cache is flushed, at every commit or when the cache is full, and only
// the latest one goes downstream and to the changelog: fewer, later
// updates. AddKeyValueStore stores are not cached by default.
func WithCachingDisabled() StoreOption {
	return storeOpt(func(s *storeOptions) { s.caching = cachingOff })
}

// WithCachingEnabled puts the record cache in front of a store added with
// AddKeyValueStore (Kafka Streams' StoreBuilder.withCachingEnabled): writes
// of a key are collapsed until the cache is flushed at commit. Default for
// those stores: not cached. DSL stores are cached unless
// WithCachingDisabled.
func WithCachingEnabled() StoreOption {
	return storeOpt(func(s *storeOptions) { s.caching = cachingOn })
}

// WithStores connects a Process or ProcessValues processor to stores
// defined with AddKeyValueStore, so that ProcessorContext.Store returns
// them. A store belongs to one task: all processors connected to a store
// run in one subtopology, so their input topics must be co-partitioned.
// Default: no stores.
func WithStores(names ...string) ProcessorOption {
	return processorOpt(func(o *options) {
		for _, n := range names {
			if !slices.Contains(o.stores, n) {
				o.stores = append(o.stores, n)
			}
		}
	})
}

// AddKeyValueStore defines a key-value store for the Processor API (Kafka
// Streams' addStateStore with a keyValueStoreBuilder). Connect processors
// to it with WithStores; inside them, get it with
//
//	st, err := ctx.Store("name")
//	kv, err := state.KeyValue[K, V](st)
//
// Options: WithInMemoryStore, WithLoggingDisabled, WithChangelogConfigs,
// WithCachingEnabled. Defaults, as Kafka Streams' StoreBuilder: persistent,
// logged to "<app-id>-<name>-changelog", not cached. The name must be
// unique among the topology's stores and a valid topic name part, or Build
// fails naming the store.
func AddKeyValueStore[K, V any](b *Builder, name string, keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...StoreOption) {
	o := optionsOf(opts)
	b.checkNil(name, "key serde", keySerde, "value serde", valueSerde)
	b.addStore(name, "AddKeyValueStore", &graph.StoreSpec{
		Name:             name,
		Engine:           o.store.engine,
		Logged:           !o.store.noLogging,
		ChangelogConfigs: o.store.changelog,
		Caching:          o.store.caching == cachingOn,
		Wrap:             keyValueStore(keySerde, valueSerde),
	})
}

// dslStore returns the spec of a DSL operator's store: cached unless o
// says otherwise.
func dslStore[K, V any](name string, generated bool, o *options, ks serde.Serde[K], vs serde.Serde[V]) *graph.StoreSpec {
	return &graph.StoreSpec{
		Name:             name,
		Engine:           o.store.engine,
		Logged:           !o.store.noLogging,
		ChangelogConfigs: o.store.changelog,
		Caching:          o.store.caching != cachingOff,
		Generated:        generated,
		Wrap:             keyValueStore(ks, vs),
	}
}

// keyValueStore returns a StoreSpec.Wrap function building typed stores.
func keyValueStore[K, V any](ks serde.Serde[K], vs serde.Serde[V]) func(state.BytesStore) state.Store {
	return func(s state.BytesStore) state.Store { return state.NewKeyValueStore(s, ks, vs) }
}

// storeName returns the store name of a DSL operator: the Materialized
// name, or Kafka Streams' generated "<prefix>STATE-STORE-<counter>"
// (newStoreName), which advances the counter; generated reports the latter.
func (b *Builder) storeName(o *options, prefix string) (name string, generated bool) {
	if o.store.name != "" {
		return o.store.name, false
	}
	return b.newName(prefix + "STATE-STORE-"), true
}

// addStore adds a store defined by owner (a node name, or how the user
// defined it) and reports whether it was accepted. An invalid or duplicate
// name is a build error naming node.
func (b *Builder) addStore(node, owner string, spec *graph.StoreSpec) bool {
	if !graph.ValidName(spec.Name) {
		b.fail(node, fmt.Errorf("store name %q is not a valid topic name part (letters, digits, '.', '_', '-')", spec.Name))
		return false
	}
	if other, dup := b.storeOwner[spec.Name]; dup {
		b.fail(node, fmt.Errorf("store %q is already defined by %s", spec.Name, other))
		return false
	}
	b.storeOwner[spec.Name] = owner
	b.stores = append(b.stores, spec)
	return true
}

// checkExplicitNaming reports every store, changelog topic and repartition
// topic of t whose name was generated rather than given (Kafka Streams'
// ensure.explicit.internal.resource.naming, KIP-1111): generated names
// change when operators are added before them, which orphans the state and
// topics of a running application. It returns nil or joined
// *topology.NodeError values, each naming the operator and matching
// errors.Is(err, topology.ErrInvalid).
func checkExplicitNaming(t *graph.Graph) error {
	var errs []error
	for _, st := range t.Stores() {
		if st.Generated {
			errs = append(errs, &topology.NodeError{Node: storeUser(t, st.Name),
				Err: fmt.Errorf("state store %q has a generated name; name it with stream.Materialized", st.Name)})
		}
	}
	for _, it := range t.InternalTopics() {
		if !it.Generated {
			continue
		}
		switch it.Kind {
		case graph.Changelog:
			for _, st := range t.Stores() {
				if graph.ChangelogTopic(st.Name) == it.Name {
					errs = append(errs, &topology.NodeError{Node: storeUser(t, st.Name),
						Err: fmt.Errorf("changelog topic %q of store %q has a generated name; name the store with stream.Materialized", it.Name, st.Name)})
				}
			}
		case graph.Repartition:
			errs = append(errs, &topology.NodeError{Node: topicWriter(t, it.Name),
				Err: fmt.Errorf("repartition topic %q has a generated name; name it with stream.Named on Repartition or on the grouping (GroupBy, GroupByKey, TableGroupBy), or name the aggregation's store with stream.Materialized", it.Name)})
		}
	}
	return errors.Join(errs...)
}

// storeUser returns the first node that uses the store, or the store name
// when no node does.
func storeUser(t *graph.Graph, store string) string {
	for _, n := range t.Nodes() {
		if slices.Contains(n.Stores, store) {
			return n.Name
		}
	}
	return store
}

// topicWriter returns the sink that writes the topic, or the topic name.
func topicWriter(t *graph.Graph, topic string) string {
	for _, n := range t.Nodes() {
		if n.Kind == graph.SinkKind && slices.Contains(n.Topics, topic) {
			return n.Name
		}
	}
	return topic
}
