package stream_test

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/streamtest"
	"github.com/runnel-dev/runnel/topology"
)

// row is an output record read with a raw value, so a tombstone (nil) is
// told apart from an empty value.
type row struct {
	key   string
	value string
	tomb  bool
}

func (r row) String() string {
	if r.tomb {
		return r.key + "=<tombstone>"
	}
	return r.key + "=" + r.value
}

// rows reads every record of topic, values raw.
func rows(t *testing.T, d *streamtest.Driver, topic string) []row {
	t.Helper()
	recs, err := streamtest.OutputTopic(d, topic, serde.String, serde.Bytes).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]row, len(recs))
	for i, r := range recs {
		out[i] = row{key: r.Key, value: string(r.Value), tomb: r.Value == nil}
	}
	return out
}

// expectRows checks that topic holds exactly want, each "k=v" or
// "k=<tombstone>".
func expectRows(t *testing.T, d *streamtest.Driver, topic string, want ...string) {
	t.Helper()
	got := rows(t, d, topic)
	gs := make([]string, len(got))
	for i, r := range got {
		gs[i] = r.String()
	}
	if !slices.Equal(gs, want) {
		t.Fatalf("%s = %v, want %v", topic, gs, want)
	}
}

func TestTableSourceAndToStream(t *testing.T) {
	for _, cached := range []bool{false, true} {
		t.Run(map[bool]string{false: "uncached", true: "cached"}[cached], func(t *testing.T) {
			b := stream.NewBuilder()
			opts := []stream.TableOption{stream.Materialized("users")}
			if !cached {
				opts = append(opts, stream.WithCachingDisabled())
			}
			stream.Table(b, "users", serde.String, serde.String, opts...).ToStream().To("out", serde.String, serde.String)
			d := drive(t, b)
			in := strIn(d, "users")
			pipeKVs(t, in, skv("a", "1"), skv("b", "1"), skv("a", "2"))
			expectRows(t, d, "out", "a=1", "b=1", "a=2")
			// A null value deletes the row, and ToStream emits a tombstone.
			if err := in.PipeRaw([]byte("a"), nil); err != nil {
				t.Fatal(err)
			}
			expectRows(t, d, "out", "a=<tombstone>")
			st, err := streamtest.KeyValueStore[string, string](d, "users")
			if err != nil {
				t.Fatal(err)
			}
			if v, ok, err := st.Get("a"); err != nil || ok {
				t.Fatalf("deleted row a = %q, %v, %v; want none", v, ok, err)
			}
			if v, ok, err := st.Get("b"); err != nil || !ok || v != "1" {
				t.Fatalf("row b = %q, %v, %v; want 1", v, ok, err)
			}
			// Deleting a missing key: Kafka Streams forwards a tombstone
			// without a cache and nothing with one.
			if err := in.PipeRaw([]byte("zz"), nil); err != nil {
				t.Fatal(err)
			}
			if cached {
				expectRows(t, d, "out")
			} else {
				expectRows(t, d, "out", "zz=<tombstone>")
			}
			// A null key is dropped.
			if err := in.PipeRaw(nil, []byte("x")); err != nil {
				t.Fatal(err)
			}
			expectRows(t, d, "out")
			// The changelog has the store's writes, the delete as a tombstone.
			got := rows(t, d, "streamtest-users-changelog")
			if !slices.Contains(got, row{key: "a", tomb: true}) || !slices.Contains(got, row{key: "a", value: "2"}) {
				t.Fatalf("changelog = %v, want a=2 and a's tombstone", got)
			}
		})
	}
}

func TestTableCachingCollapsesUpdates(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "lines", serde.String, serde.String)
	// A table of the last word of each line's key, fed several updates per Pipe.
	stream.FlatMapValues(src, strings.Fields).To("words", serde.String, serde.String)
	stream.Table(b, "words", serde.String, serde.String).ToStream().To("out", serde.String, serde.String)
	d := drive(t, b)
	pipeKVs(t, strIn(d, "lines"), skv("k", "x y z"))
	expectRows(t, d, "out", "k=z")
}

func TestTableFilter(t *testing.T) {
	b := stream.NewBuilder()
	amounts := stream.Table(b, "amounts", serde.String, serde.Int64, stream.WithCachingDisabled())
	big := func(_ string, v int64) bool { return v >= 10 }
	amounts.Filter(big).ToStream().To("big", serde.String, serde.Int64)
	amounts.FilterNot(big).ToStream().To("small", serde.String, serde.Int64)
	d := drive(t, b)
	in := streamtest.InputTopic(d, "amounts", serde.String, serde.Int64)
	step := func(v int64, delete bool, wantBig, wantSmall []string) {
		t.Helper()
		var err error
		if delete {
			err = in.PipeRaw([]byte("a"), nil)
		} else {
			err = in.Pipe("a", v)
		}
		if err != nil {
			t.Fatal(err)
		}
		for topic, want := range map[string][]string{"big": wantBig, "small": wantSmall} {
			var got []string
			for _, r := range rows(t, d, topic) {
				if r.tomb {
					got = append(got, r.String())
				} else {
					got = append(got, r.key+"="+strconv.FormatInt(int64(binary.BigEndian.Uint64([]byte(r.value))), 10))
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("after a=%d (delete %v): %s = %v, want %v", v, delete, topic, got, want)
			}
		}
	}
	step(5, false, nil, []string{"a=5"})                         // new fails big: nothing to retract there
	step(15, false, []string{"a=15"}, []string{"a=<tombstone>"}) // moves from small to big
	step(20, false, []string{"a=20"}, nil)                       // small saw neither value: dropped
	step(3, false, []string{"a=<tombstone>"}, []string{"a=3"})   // back to small
	step(0, true, nil, []string{"a=<tombstone>"})                // deleted from small only
}

func TestTableMapValues(t *testing.T) {
	b := stream.NewBuilder()
	var seen []string
	prices := stream.Table(b, "prices", serde.String, serde.Int64, stream.WithCachingDisabled())
	stream.TableMapValues(prices, func(v int64) string {
		seen = append(seen, strconv.FormatInt(v, 10))
		return "$" + strconv.FormatInt(v, 10)
	}).ToStream().To("out", serde.String, serde.String)
	d := drive(t, b)
	in := streamtest.InputTopic(d, "prices", serde.String, serde.Int64)
	if err := in.Pipe("tea", 3); err != nil {
		t.Fatal(err)
	}
	if err := in.Pipe("tea", 4); err != nil {
		t.Fatal(err)
	}
	if err := in.PipeRaw([]byte("tea"), nil); err != nil {
		t.Fatal(err)
	}
	expectRows(t, d, "out", "tea=$3", "tea=$4", "tea=<tombstone>")
	// The mapper sees new and old values (to retract what it derived).
	if want := []string{"3", "4", "3", "4"}; !slices.Equal(seen, want) {
		t.Fatalf("mapper saw %v, want %v", seen, want)
	}
}

// userRegions is a table of users' regions regrouped and counted by
// region.
func userRegions(b *stream.Builder, opts ...stream.MaterializedOption) {
	users := stream.Table(b, "user-regions", serde.String, serde.String, stream.Materialized("users"))
	byRegion := stream.TableGroupBy(users, func(user, region string) (string, string) { return region, user }, serde.String, serde.String)
	byRegion.Count(append(opts, stream.Materialized("region-counts"))...).ToStream().To("region-counts", serde.String, serde.Int64)
}

func TestTableGroupByCountRetracts(t *testing.T) {
	b := stream.NewBuilder()
	userRegions(b, stream.WithCachingDisabled())
	d := drive(t, b)
	in := strIn(d, "user-regions")
	out := int64Out(d, "region-counts")
	pipeKVs(t, in, skv("alice", "eu"), skv("bob", "eu"))
	expectKVs(t, out, i64("eu", 1), i64("eu", 2))
	// Alice moves: subtracted from eu, added to us.
	pipeKVs(t, in, skv("alice", "us"))
	expectKVs(t, out, i64("eu", 1), i64("us", 1))
	// Bob is deleted: subtracted from eu, whose count stays at 0.
	if err := in.PipeRaw([]byte("bob"), nil); err != nil {
		t.Fatal(err)
	}
	expectKVs(t, out, i64("eu", 0))
	// An update within a group subtracts, then adds.
	pipeKVs(t, in, skv("alice", "us"))
	expectKVs(t, out, i64("us", 0), i64("us", 1))
	// The repartition topic carries the value and a flag byte: 0 to
	// subtract, 1 to add.
	raw, err := streamtest.OutputTopic(d, "streamtest-region-counts-repartition", serde.String, serde.Bytes).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range raw {
		got = append(got, r.Key+":"+string(r.Value[:len(r.Value)-1])+"/"+strconv.Itoa(int(r.Value[len(r.Value)-1])))
	}
	want := []string{"eu:alice/1", "eu:bob/1", "eu:alice/0", "us:alice/1", "eu:bob/0", "us:alice/0", "us:alice/1"}
	if !slices.Equal(got, want) {
		t.Fatalf("repartition records = %v, want %v", got, want)
	}
}

func TestTableGroupByCountCached(t *testing.T) {
	b := stream.NewBuilder()
	userRegions(b)
	d := drive(t, b)
	in := strIn(d, "user-regions")
	out := int64Out(d, "region-counts")
	pipeKVs(t, in, skv("alice", "eu"), skv("bob", "eu"), skv("alice", "us"))
	if err := in.PipeRaw([]byte("bob"), nil); err != nil {
		t.Fatal(err)
	}
	// One result per group and Pipe; the in-group update collapses.
	pipeKVs(t, in, skv("alice", "us"))
	expectKVs(t, out, i64("eu", 1), i64("eu", 2), i64("eu", 1), i64("us", 1), i64("eu", 0), i64("us", 1))
}

func TestTableGroupByReduceAndAggregate(t *testing.T) {
	b := stream.NewBuilder()
	ages := stream.Table(b, "user-ages", serde.String, serde.String, stream.WithCachingDisabled())
	// key "region/age" per user: group ages by region.
	split := func(v string) (string, int64) {
		region, age, _ := strings.Cut(v, "/")
		n, _ := strconv.ParseInt(age, 10, 64)
		return region, n
	}
	byRegion := stream.TableGroupBy(ages, func(_, v string) (string, int64) { return split(v) }, serde.String, serde.Int64, stream.Named("by-region"))
	byRegion.Reduce(func(agg, v int64) int64 { return agg + v }, func(agg, v int64) int64 { return agg - v },
		stream.Materialized("age-sum"), stream.WithCachingDisabled()).ToStream().To("sum", serde.String, serde.Int64)
	members := stream.TableGroupBy(ages, func(user, v string) (string, string) { r, _ := split(v); return r, user }, serde.String, serde.String)
	stream.TableAggregate(members, func() string { return "" },
		func(_ string, user, agg string) string { return strings.TrimPrefix(agg+","+user, ",") },
		func(_ string, user, agg string) string {
			names := slices.DeleteFunc(strings.Split(agg, ","), func(n string) bool { return n == user })
			return strings.Join(names, ",")
		}, serde.String, stream.Materialized("members"), stream.WithCachingDisabled()).ToStream().To("members", serde.String, serde.String)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := graph.Of(topo).InternalTopic("by-region-repartition"); !ok {
		t.Fatalf("internal topics %v lack the grouping's by-region-repartition", graph.Of(topo).InternalTopics())
	}
	d := drive(t, b)
	in := strIn(d, "user-ages")
	pipeKVs(t, in, skv("ann", "eu/30"), skv("ben", "eu/40"), skv("ann", "us/31"))
	expectKVs(t, int64Out(d, "sum"), i64("eu", 30), i64("eu", 70), i64("eu", 40), i64("us", 31))
	expectKVs(t, strOut(d, "members"), skv("eu", "ann"), skv("eu", "ann,ben"), skv("eu", "ben"), skv("us", "ann"))
}

func TestTableNamesFollowKafkaStreams(t *testing.T) {
	b := stream.NewBuilder()
	stream.Table(b, "input-topic", serde.String, serde.String, stream.Named("users")).ToStream().To("out", serde.String, serde.String)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range graph.Of(topo).Nodes() {
		names = append(names, n.Name)
	}
	// Kafka Streams: Consumed.as("users") names the source "users-source"
	// and the table processor "users"; the store name is generated first.
	want := []string{"users-source", "users", "KTABLE-TOSTREAM-0000000003", "KSTREAM-SINK-0000000004"}
	if !slices.Equal(names, want) {
		t.Fatalf("nodes = %v, want %v", names, want)
	}
	stores := map[string]bool{}
	for _, st := range graph.Of(topo).Stores() {
		stores[st.Name] = st.Generated
	}
	if want := map[string]bool{"input-topic-STATE-STORE-0000000000": true}; !maps.Equal(stores, want) {
		t.Fatalf("stores (name: generated) = %v, want %v", stores, want)
	}
	if n := graph.Of(topo).Node("users"); !slices.Equal(n.Stores, []string{"input-topic-STATE-STORE-0000000000"}) || n.Kind != graph.ProcessorKind {
		t.Fatalf("table source processor = %+v, want a processor using the store", n)
	}
}

// TestTableNullAggregateIsADelete: an aggregate that serializes to null
// (a Bytes reducer returning nil when its group empties, as Kafka Streams
// reducers return null) deletes the row, and downstream sees a deletion —
// with and without the cache.
func TestTableNullAggregateIsADelete(t *testing.T) {
	for _, cached := range []bool{false, true} {
		t.Run(fmt.Sprintf("cached=%v", cached), func(t *testing.T) {
			var cacheOff stream.StoreOption // nil options are skipped
			if !cached {
				cacheOff = stream.WithCachingDisabled()
			}
			b := stream.NewBuilder()
			rows := stream.Table(b, "rows", serde.String, serde.Bytes, cacheOff)
			byGroup := stream.TableGroupBy(rows, func(_ string, v []byte) (string, []byte) { return "G", v }, serde.String, serde.Bytes)
			sums := byGroup.Reduce(
				func(agg, v []byte) []byte { return append(slices.Clone(agg), v...) },
				func(agg, v []byte) []byte {
					if len(agg) <= len(v) {
						return nil // the group is empty: null, as in Kafka Streams
					}
					return agg[:len(agg)-len(v)]
				}, stream.Materialized("sums"), cacheOff)
			stream.TableMapValues(sums, func(v []byte) int64 { return int64(len(v)) }).ToStream().To("lens", serde.String, serde.Int64)
			d := drive(t, b)
			in := streamtest.InputTopic(d, "rows", serde.String, serde.Bytes)
			for _, kv := range []stream.KeyValue[string, []byte]{{"r1", []byte("x")}, {"r1", nil}, {"r1", []byte("y")}} {
				if err := in.PipeRecord(topology.Record[string, []byte]{Key: kv.Key, Value: kv.Value, Tombstone: kv.Value == nil}); err != nil {
					t.Fatal(err)
				}
			}
			got, err := int64Out(d, "lens").ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range got {
				if r.Tombstone {
					out = append(out, r.Key+"=null")
				} else {
					out = append(out, fmt.Sprintf("%s=%d", r.Key, r.Value))
				}
			}
			want := []string{"G=1", "G=null", "G=1"}
			if !slices.Equal(out, want) {
				t.Errorf("output %v, want %v", out, want)
			}
		})
	}
}
