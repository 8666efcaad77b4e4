package stream_test

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/streamtest"
	"github.com/runnel-dev/runnel/topology"
)

// nonWord splits like Java's String.split("\\W+").
var nonWord = regexp.MustCompile(`\W+`)

// wordCount is Kafka Streams' WordCountDemo: lines of text in, the running
// count of every (lower-cased) word out.
func wordCount(b *stream.Builder, opts ...stream.MaterializedOption) {
	source := stream.From(b, "streams-plaintext-input", serde.String, serde.String)
	words := stream.FlatMapValues(source, func(line string) []string { return nonWord.Split(strings.ToLower(line), -1) })
	counts := stream.GroupBy(words, func(_, word string) string { return word }, serde.String, serde.String).Count(opts...)
	counts.ToStream().To("streams-wordcount-output", serde.String, serde.Int64)
}

// int64Out reads a topic of string keys and int64 values.
func int64Out(d *streamtest.Driver, topic string) *streamtest.Output[string, int64] {
	return streamtest.OutputTopic(d, topic, serde.String, serde.Int64)
}

// i64 is a KeyValue of a string and an int64.
func i64(k string, v int64) stream.KeyValue[string, int64] { return stream.KV(k, v) }

// TestWordCount checks the outputs Kafka Streams' WordCountDemoTest expects.
// The demo disables caching (statestore.cache.max.bytes=0).
func TestWordCount(t *testing.T) {
	t.Run("OneWord", func(t *testing.T) {
		b := stream.NewBuilder()
		wordCount(b, stream.WithCachingDisabled())
		d := drive(t, b)
		pipeKVs(t, strIn(d, "streams-plaintext-input"), skv("", "Hello"))
		expectKVs(t, int64Out(d, "streams-wordcount-output"), i64("hello", 1))
	})
	for name, opts := range map[string][]stream.MaterializedOption{"CountListOfWords/uncached": {stream.WithCachingDisabled()}, "CountListOfWords/cached": nil} {
		t.Run(name, func(t *testing.T) {
			b := stream.NewBuilder()
			wordCount(b, opts...)
			d := drive(t, b)
			pipeKVs(t, strIn(d, "streams-plaintext-input"),
				skv("", "Apache   Kafka Streams   Example"),
				skv("", "Using  \t\t Kafka   Streams\tTest Utils"),
				skv("", "Reading and Writing Kafka Topic"))
			recs := readKVs(t, int64Out(d, "streams-wordcount-output"))
			got := map[string]int64{}
			for _, kv := range recs {
				got[kv.Key] = kv.Value
			}
			want := map[string]int64{"apache": 1, "kafka": 3, "streams": 2, "example": 1, "using": 1, "test": 1,
				"utils": 1, "reading": 1, "and": 1, "writing": 1, "topic": 1}
			if !maps.Equal(got, want) {
				t.Fatalf("final counts = %v, want %v", got, want)
			}
			// No line repeats a word, so cached or not there is one update
			// per word of each line.
			if len(recs) != 4+5+5 {
				t.Fatalf("%d updates, want 14: %v", len(recs), recs)
			}
		})
	}
}

// aggregations adds Count, Reduce (sum) and Aggregate (concatenation) of a
// grouped stream of string keys and values.
func aggregations(g stream.KGroupedStream[string, string], opts ...stream.MaterializedOption) {
	g.Count(append(opts, stream.Materialized("count"))...).ToStream().To("count", serde.String, serde.Int64)
	g.Reduce(func(agg, v string) string { return agg + "+" + v },
		append(opts, stream.Materialized("reduce"))...).ToStream().To("reduce", serde.String, serde.String)
	stream.Aggregate(g, func() int64 { return 100 }, func(_ string, v string, agg int64) int64 { return agg + int64(len(v)) }, serde.Int64,
		append(opts, stream.Materialized("aggregate"))...).ToStream().To("aggregate", serde.String, serde.Int64)
}

func TestStreamAggregationsUncached(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	aggregations(stream.FlatMapValues(src, strings.Fields).GroupByKey(serde.String, serde.String), stream.WithCachingDisabled())
	d := drive(t, b)
	in := strIn(d, "in")
	if err := in.PipeRecord(topology.Record[string, string]{Key: "a", Value: "x yy", Timestamp: 7}); err != nil {
		t.Fatal(err)
	}
	pipeKVs(t, in, skv("b", "z"), skv("a", "www"))
	// Every update goes downstream, with the input record's timestamp.
	out := int64Out(d, "count")
	if rec, err := out.ReadRecord(); err != nil || rec.Key != "a" || rec.Value != 1 || rec.Timestamp != 7 {
		t.Fatalf("first count = %+v, %v; want a=1 at 7", rec, err)
	}
	expectKVs(t, out, i64("a", 2), i64("b", 1), i64("a", 3))
	expectKVs(t, strOut(d, "reduce"), skv("a", "x"), skv("a", "x+yy"), skv("b", "z"), skv("a", "x+yy+www"))
	expectKVs(t, int64Out(d, "aggregate"), i64("a", 101), i64("a", 103), i64("b", 101), i64("a", 106))
}

func TestStreamAggregationsCached(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	aggregations(stream.FlatMapValues(src, strings.Fields).GroupByKey(serde.String, serde.String))
	d := drive(t, b)
	in := strIn(d, "in")
	// The updates of one Pipe collapse into the last one per key.
	pipeKVs(t, in, skv("a", "x yy"))
	expectKVs(t, int64Out(d, "count"), i64("a", 2))
	expectKVs(t, strOut(d, "reduce"), skv("a", "x+yy"))
	expectKVs(t, int64Out(d, "aggregate"), i64("a", 103))
	pipeKVs(t, in, skv("b", "z"), skv("a", "www"))
	expectKVs(t, int64Out(d, "count"), i64("b", 1), i64("a", 3))
	expectKVs(t, strOut(d, "reduce"), skv("b", "z"), skv("a", "x+yy+www"))
	expectKVs(t, int64Out(d, "aggregate"), i64("b", 101), i64("a", 106))
	// The store holds the aggregates.
	st, err := streamtest.KeyValueStore[string, int64](d, "count")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, err := st.Get("a"); err != nil || !ok || v != 3 {
		t.Fatalf("store count of a = %d, %v, %v; want 3", v, ok, err)
	}
}

func TestGroupByRepartitionsThroughStoreTopic(t *testing.T) {
	b := stream.NewBuilder()
	wordCount(b, stream.Materialized("counts"))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	for name, kind := range map[string]graph.InternalTopicKind{"counts-repartition": graph.Repartition, "counts-changelog": graph.Changelog} {
		if it, ok := graph.Of(topo).InternalTopic(name); !ok || it.Kind != kind || it.Generated {
			t.Errorf("internal topic %q = %+v, %v; want a named one of kind %v", name, it, ok, kind)
		}
	}
	if n := len(graph.Of(topo).Subtopologies()); n != 2 {
		t.Fatalf("%d subtopologies, want 2", n)
	}
	d := drive(t, b, streamtest.Config{AppID: "wc"})
	pipeKVs(t, strIn(d, "streams-plaintext-input"), skv("line1", "b a b"))
	// Re-keyed by word through the repartition topic, counted, changelogged.
	expectKVs(t, strOut(d, "wc-counts-repartition"), skv("b", "b"), skv("a", "a"), skv("b", "b"))
	expectKVs(t, int64Out(d, "streams-wordcount-output"), i64("b", 2), i64("a", 1))
	expectKVs(t, int64Out(d, "wc-counts-changelog"), i64("b", 2), i64("a", 1))
}

func TestGroupingNameNamesRepartitionTopic(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	g := stream.GroupBy(src, func(_, v string) string { return v }, serde.String, serde.String, stream.Named("by-value"))
	// Two aggregations of a named grouping share its repartition topic.
	g.Count(stream.Materialized("c1")).ToStream().To("c1", serde.String, serde.Int64)
	g.Count().ToStream().To("c2", serde.String, serde.Int64)
	// A grouping without a name repartitions per aggregation, by store.
	g2 := stream.SelectKey(src, func(_, v string) string { return v }).GroupByKey(serde.String, serde.String)
	g2.Count(stream.Materialized("c3"))
	g2.Count(stream.Materialized("c4"))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	var repartitions []string
	for _, it := range graph.Of(topo).InternalTopics() {
		if it.Kind == graph.Repartition {
			repartitions = append(repartitions, it.Name)
		}
	}
	if want := []string{"by-value-repartition", "c3-repartition", "c4-repartition"}; !slices.Equal(repartitions, want) {
		t.Fatalf("repartition topics = %v, want %v", repartitions, want)
	}
	if n := graph.Of(topo).Node("by-value"); n == nil {
		t.Fatal("the key-select node is not named after the grouping")
	}
	d := drive(t, b)
	pipeKVs(t, strIn(d, "in"), skv("1", "x"), skv("2", "x"))
	expectKVs(t, int64Out(d, "c1"), i64("x", 1), i64("x", 2))
	expectKVs(t, int64Out(d, "c2"), i64("x", 1), i64("x", 2))
}

// logCapture is a slog handler that keeps the records it gets.
type logCapture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	return nil
}
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCapture) WithGroup(string) slog.Handler      { return l }

// skipped returns the reasons of the "skipping record" logs, by node.
func (l *logCapture) skipped() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]string{}
	for _, r := range l.recs {
		if r.Message != "skipping record" {
			continue
		}
		var node, reason string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "node":
				node = a.Value.String()
			case "reason":
				reason = a.Value.String()
			}
			return true
		})
		out[node] = append(out[node], reason)
	}
	return out
}

func TestAggregationDropsNullKeysAndValues(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.Bytes, serde.String)
	// Not repartitioned: the aggregation drops null keys itself.
	src.GroupByKey(serde.Bytes, serde.String).Count(stream.Named("direct"), stream.WithCachingDisabled()).
		ToStream().To("direct", serde.Bytes, serde.Int64)
	// Repartitioned: the repartition sink drops them.
	rekeyed := stream.SelectKey(src, func(k []byte, _ string) []byte { return k })
	rekeyed.GroupByKey(serde.Bytes, serde.String).Count(stream.Named("rekeyed"), stream.Materialized("rekeyed"), stream.WithCachingDisabled()).
		ToStream().To("rekeyed", serde.Bytes, serde.Int64)
	logs := &logCapture{}
	d := drive(t, b, streamtest.Config{Logger: slog.New(logs)})
	in := streamtest.InputTopic(d, "in", serde.Bytes, serde.String)
	for _, kv := range []struct{ k, v []byte }{{nil, []byte("v")}, {[]byte("k"), nil}, {[]byte("k"), []byte("v")}} {
		if err := in.PipeRaw(kv.k, kv.v); err != nil {
			t.Fatal(err)
		}
	}
	for _, topic := range []string{"direct", "rekeyed"} {
		recs, err := streamtest.OutputTopic(d, topic, serde.String, serde.Int64).ReadAll()
		if err != nil || len(recs) != 1 || recs[0].Key != "k" || recs[0].Value != 1 {
			t.Errorf("%s output = %v, %v; want only k=1", topic, recs, err)
		}
	}
	want := map[string][]string{
		"direct":                   {"null_key", "null_value"},
		"rekeyed-repartition-sink": {"null_key"},
		"rekeyed":                  {"null_value"},
	}
	if got := logs.skipped(); !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("skipped records by node = %v, want %v", got, want)
	}
	if nk, nv := d.SkippedRecords("null_key"), d.SkippedRecords("null_value"); nk != 2 || nv != 2 {
		t.Errorf("SkippedRecords: null_key %d, null_value %d; want 2 and 2", nk, nv)
	}
}

// TestCacheFlushErrorsGoToTheHandler: an error downstream of a cache flush
// (here a panicking TableMapValues behind a cached Count) is handed to the
// processing error handler like any processing error, instead of failing
// the store: under LogAndContinue the update is skipped and later ones
// flow; under LogAndFail the flush fails with a *topology.ProcessingError.
func TestCacheFlushErrorsGoToTheHandler(t *testing.T) {
	build := func() *stream.Builder {
		b := stream.NewBuilder()
		words := stream.From(b, "words", serde.String, serde.String)
		counts := words.GroupByKey(serde.String, serde.String).Count(stream.Materialized("counts"))
		stream.TableMapValues(counts, func(n int64) int64 {
			if n == 2 {
				panic("two")
			}
			return n
		}, stream.Named("no-twos")).ToStream().To("out", serde.String, serde.Int64)
		return b
	}

	d := drive(t, build(), streamtest.Config{ProcessingErrorHandler: stream.LogAndContinue})
	in := strIn(d, "words")
	pipeKVs(t, in, skv("a", "x"))
	// Counts 2 (new value 2) and 3 (old value 2): the flushed changes
	// panic downstream and are skipped.
	for range 2 {
		if err := in.Pipe("a", "x"); err != nil {
			t.Fatalf("Pipe under LogAndContinue: %v", err)
		}
	}
	pipeKVs(t, in, skv("a", "x"))
	expectKVs(t, int64Out(d, "out"), i64("a", 1), i64("a", 4))
	if n := d.SkippedRecords("processing"); n != 2 {
		t.Errorf("SkippedRecords(processing) = %d, want 2", n)
	}

	d = drive(t, build())
	in = strIn(d, "words")
	pipeKVs(t, in, skv("a", "x"))
	err := in.Pipe("a", "x")
	var pe *topology.ProcessingError
	if !errors.As(err, &pe) || pe.Node != "no-twos" || !errors.Is(err, topology.ErrPanic) {
		t.Fatalf("Pipe under LogAndFail = %v, want a panic ProcessingError of node no-twos", err)
	}
}
