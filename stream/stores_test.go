package stream_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/topology"
)

func TestProcessorStore(t *testing.T) {
	b := stream.NewBuilder()
	stream.AddKeyValueStore(b, "seen", serde.String, serde.Int64)
	src := stream.From(b, "in", serde.String, serde.String)
	var seen state.KeyValueStore[string, int64]
	stream.ProcessValues(src, supply(topology.ProcessorFuncs[string, string, string, int64]{
		OnInit: func(ctx topology.ProcessorContext[string, int64]) error {
			st, err := ctx.Store("seen")
			if err != nil {
				return err
			}
			seen, err = state.KeyValue[string, int64](st)
			return err
		},
		OnProcess: func(ctx topology.ProcessorContext[string, int64], rec topology.Record[string, string]) error {
			n, _, err := seen.Get(rec.Key)
			if err != nil {
				return err
			}
			if err := seen.Put(rec.Key, n+1); err != nil {
				return err
			}
			return ctx.Forward(topology.Record[string, int64]{Key: rec.Key, Value: n + 1, Timestamp: rec.Timestamp})
		},
	}), stream.Named("counter"), stream.WithStores("seen")).To("out", serde.String, serde.Int64)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	st := graph.Of(topo).Store("seen")
	if st == nil || st.Caching || !st.Logged || st.Engine != state.Persistent || st.Generated {
		t.Fatalf("store spec = %+v, want Kafka Streams' StoreBuilder defaults: persistent, logged, not cached", st)
	}
	if !strings.Contains(topo.Describe(), "Processor: counter (stores: [seen])") {
		t.Fatalf("Describe does not show the store:\n%s", topo.Describe())
	}
	d := drive(t, b)
	pipeKVs(t, strIn(d, "in"), skv("a", "x"), skv("b", "x"), skv("a", "x"))
	expectKVs(t, int64Out(d, "out"), i64("a", 1), i64("b", 1), i64("a", 2))
	expectKVs(t, int64Out(d, "streamtest-seen-changelog"), i64("a", 1), i64("b", 1), i64("a", 2))
}

func TestProcessorStoreOptions(t *testing.T) {
	b := stream.NewBuilder()
	stream.AddKeyValueStore(b, "mem", serde.String, serde.String, stream.WithInMemoryStore(), stream.WithLoggingDisabled(), stream.WithCachingEnabled())
	stream.AddKeyValueStore(b, "cfg", serde.String, serde.String, stream.WithChangelogConfigs(map[string]string{"segment.bytes": "1048576"}))
	src := stream.From(b, "in", serde.String, serde.String)
	stream.Process(src, supply(topology.ProcessorFuncs[string, string, string, string]{}), stream.WithStores("mem", "cfg", "mem"))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if st := graph.Of(topo).Store("mem"); st.Engine != state.InMemory || st.Logged || !st.Caching {
		t.Fatalf("store mem = %+v, want in memory, not logged, cached", st)
	}
	if _, ok := graph.Of(topo).InternalTopic("mem-changelog"); ok {
		t.Fatal("a store with logging disabled has a changelog topic")
	}
	if it, ok := graph.Of(topo).InternalTopic("cfg-changelog"); !ok || it.Configs["segment.bytes"] != "1048576" {
		t.Fatalf("changelog of cfg = %+v, %v; want its configs", it, ok)
	}
	if n := graph.Of(topo).Nodes()[1]; len(n.Stores) != 2 {
		t.Fatalf("processor stores = %v, want mem and cfg once each", n.Stores)
	}
}

func TestProcessorStoreErrors(t *testing.T) {
	b := stream.NewBuilder()
	stream.AddKeyValueStore(b, "counts", serde.String, serde.Int64)
	stream.AddKeyValueStore(b, "other", serde.String, serde.Int64)
	src := stream.From(b, "in", serde.String, serde.String)
	var wrongType, unconnected error
	stream.Process(src, supply(topology.ProcessorFuncs[string, string, string, string]{
		OnInit: func(ctx topology.ProcessorContext[string, string]) error {
			st, err := ctx.Store("counts")
			if err != nil {
				return err
			}
			_, wrongType = state.KeyValue[string, string](st)
			_, unconnected = ctx.Store("other")
			return nil
		},
	}), stream.Named("proc"), stream.WithStores("counts"))
	drive(t, b)
	if !errors.Is(wrongType, state.ErrWrongType) {
		t.Errorf("KeyValue with other types = %v, want state.ErrWrongType", wrongType)
	}
	if !errors.Is(unconnected, stream.ErrStoreNotConnected) || !strings.Contains(unconnected.Error(), `"proc"`) || !strings.Contains(unconnected.Error(), `"other"`) {
		t.Errorf("Store of an unconnected store = %v, want ErrStoreNotConnected naming node and store", unconnected)
	}
}

func TestBuildStoreErrors(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	g := src.GroupByKey(serde.String, serde.String)
	g.Count(stream.Named("bad"), stream.Materialized("no spaces"))
	g.Count(stream.Named("first"), stream.Materialized("counts"))
	g.Count(stream.Named("second"), stream.Materialized("counts"))
	stream.AddKeyValueStore(b, "counts", serde.String, serde.Int64)
	stream.AddKeyValueStore(b, "", serde.String, serde.Int64)
	stream.Process(src, supply(topology.ProcessorFuncs[string, string, string, string]{}), stream.Named("proc"), stream.WithStores("missing"))
	g.Reduce(nil, stream.Named("reduce"))
	stream.Aggregate[string, string, int64](g, nil, nil, nil, stream.Named("aggregate"))
	stream.GroupBy(src, func(_, v string) string { return v }, serde.String, serde.String, stream.Named("bad grouping"))
	err := buildErr(t, b)
	expectNodeError(t, err, "bad", `store name "no spaces" is not a valid`)
	expectNodeError(t, err, "second", `store "counts" is already defined by node "first"`)
	expectNodeError(t, err, "counts", `store "counts" is already defined by node "first"`)
	expectNodeError(t, err, "", `store name "" is not a valid`)
	expectNodeError(t, err, "proc", `uses store "missing", which is not defined`)
	expectNodeError(t, err, "reduce", "reducer is nil")
	expectNodeError(t, err, "aggregate", "initializer is nil")
	expectNodeError(t, err, "aggregate", "aggregator is nil")
	expectNodeError(t, err, "aggregate", "aggregate serde is nil")
	expectNodeError(t, err, "bad grouping", "not a valid topic name part")
}

func TestCheckExplicitNaming(t *testing.T) {
	b := stream.NewBuilder()
	wordCount(b)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	err = stream.CheckExplicitNaming(graph.Of(topo))
	if !errors.Is(err, topology.ErrInvalid) {
		t.Fatalf("CheckExplicitNaming = %v, want an error matching topology.ErrInvalid", err)
	}
	const store = "KSTREAM-AGGREGATE-STATE-STORE-0000000003"
	expectNodeError(t, err, "KSTREAM-AGGREGATE-0000000004", `state store "`+store+`" has a generated name; name it with stream.Materialized`)
	expectNodeError(t, err, "KSTREAM-AGGREGATE-0000000004", `changelog topic "`+store+`-changelog" of store "`+store+`" has a generated name`)
	expectNodeError(t, err, "KSTREAM-SINK-0000000005", `repartition topic "`+store+`-repartition" has a generated name`)
	if n := len(nodeErrors(err)); n != 3 {
		t.Fatalf("%d errors, want 3: %v", n, err)
	}

	// Naming the store names its changelog and the repartition topic.
	b = stream.NewBuilder()
	wordCount(b, stream.Materialized("counts"))
	stream.Table(b, "users", serde.String, serde.String, stream.Materialized("users"))
	stream.From(b, "in", serde.String, serde.String).Repartition(serde.String, serde.String, stream.Named("rekeyed"))
	if topo, err = b.Build(); err != nil {
		t.Fatal(err)
	}
	if err := stream.CheckExplicitNaming(graph.Of(topo)); err != nil {
		t.Fatalf("CheckExplicitNaming of a named topology = %v", err)
	}

	// A table's store and an unnamed Repartition are found too; a
	// grouping name names the repartition topic but not the store.
	b = stream.NewBuilder()
	stream.Table(b, "users", serde.String, serde.String, stream.Named("users"))
	src := stream.From(b, "in", serde.String, serde.String)
	src.Repartition(serde.String, serde.String)
	stream.GroupBy(src, func(_, v string) string { return v }, serde.String, serde.String, stream.Named("by-value")).Count(stream.Named("count"), stream.WithLoggingDisabled())
	if topo, err = b.Build(); err != nil {
		t.Fatal(err)
	}
	err = stream.CheckExplicitNaming(graph.Of(topo))
	expectNodeError(t, err, "users", `state store "users-STATE-STORE-0000000000"`)
	expectNodeError(t, err, "users", `changelog topic "users-STATE-STORE-0000000000-changelog"`)
	expectNodeError(t, err, "KSTREAM-SINK-0000000005", `repartition topic "KSTREAM-REPARTITION-0000000004-repartition"`)
	expectNodeError(t, err, "count", `state store "KSTREAM-AGGREGATE-STATE-STORE-0000000010"`)
	if n := len(nodeErrors(err)); n != 4 {
		t.Fatalf("%d errors, want 4: %v", n, err)
	}
}
