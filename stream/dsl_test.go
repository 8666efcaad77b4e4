package stream_test

import (
	"errors"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/streamtest"
	"github.com/runnel-dev/runnel/topology"
)

func TestFrom(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.Int64).To("out", serde.String, serde.Int64)
	d := drive(t, b)
	in := streamtest.InputTopic(d, "in", serde.String, serde.Int64)
	hdrs := []topology.Header{{Key: "h", Value: []byte("1")}}
	if err := in.PipeRecord(topology.Record[string, int64]{Key: "a", Value: 7, Timestamp: 1234, Headers: hdrs}); err != nil {
		t.Fatal(err)
	}
	rec, err := streamtest.OutputTopic(d, "out", serde.String, serde.Int64).ReadRecord()
	if err != nil {
		t.Fatal(err)
	}
	if rec.Key != "a" || rec.Value != 7 || rec.Timestamp != 1234 || len(rec.Headers) != 1 || rec.Headers[0].Key != "h" || string(rec.Headers[0].Value) != "1" {
		t.Fatalf("out = %+v, want the input record unchanged", rec)
	}
}

func TestFromTopics(t *testing.T) {
	b := stream.NewBuilder()
	stream.FromTopics(b, []string{"a", "b"}, serde.String, serde.String).To("out", serde.String, serde.String)
	d := drive(t, b)
	pipeKVs(t, strIn(d, "a"), skv("1", "from a"))
	pipeKVs(t, strIn(d, "b"), skv("2", "from b"))
	if err := strIn(d, "c").Pipe("3", "from c"); err == nil {
		t.Fatal("piping to a topic the source does not read succeeded")
	}
	expectKVs(t, strOut(d, "out"), skv("1", "from a"), skv("2", "from b"))
}

func TestFromPattern(t *testing.T) {
	b := stream.NewBuilder()
	stream.FromPattern(b, regexp.MustCompile(`logs-[a-z]+`), serde.String, serde.String).To("out", serde.String, serde.String)
	d := drive(t, b)
	pipeKVs(t, strIn(d, "logs-eu"), skv("k", "eu"))
	pipeKVs(t, strIn(d, "logs-us"), skv("k", "us"))
	for _, topic := range []string{"logs-1", "xlogs-eu", "logs-eu2"} {
		if err := strIn(d, topic).Pipe("k", topic); err == nil {
			t.Errorf("topic %q does not match the whole pattern but was read", topic)
		}
	}
	expectKVs(t, strOut(d, "out"), skv("k", "eu"), skv("k", "us"))
}

func TestFilterAndFilterNot(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.Int64)
	even := func(_ string, v int64) bool { return v%2 == 0 }
	src.Filter(even).To("even", serde.String, serde.Int64)
	src.FilterNot(even).To("odd", serde.String, serde.Int64)
	d := drive(t, b)
	in := streamtest.InputTopic(d, "in", serde.String, serde.Int64)
	for i := range int64(5) {
		pipeKVs(t, in, stream.KV("k", i))
	}
	expectKVs(t, streamtest.OutputTopic(d, "even", serde.String, serde.Int64), stream.KV("k", int64(0)), stream.KV("k", int64(2)), stream.KV("k", int64(4)))
	expectKVs(t, streamtest.OutputTopic(d, "odd", serde.String, serde.Int64), stream.KV("k", int64(1)), stream.KV("k", int64(3)))
}

func TestMap(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	stream.Map(src, func(k, v string) (int64, string) { return int64(len(k)), k + "=" + v }).To("out", serde.Int64, serde.String)
	d := drive(t, b)
	pipeKVs(t, strIn(d, "in"), skv("abc", "x"), skv("", "y"))
	expectKVs(t, streamtest.OutputTopic(d, "out", serde.Int64, serde.String), stream.KV(int64(3), "abc=x"), stream.KV(int64(0), "=y"))
}

func TestMapValues(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	stream.MapValues(src, func(v string) int64 { return int64(len(v)) }).To("out", serde.String, serde.Int64)
	d := drive(t, b)
	pipeKVs(t, strIn(d, "in"), skv("a", "hello"), skv("b", ""))
	expectKVs(t, streamtest.OutputTopic(d, "out", serde.String, serde.Int64), stream.KV("a", int64(5)), stream.KV("b", int64(0)))
}

func TestFlatMap(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	stream.FlatMap(src, func(k, v string) []stream.KeyValue[string, int64] {
		var out []stream.KeyValue[string, int64]
		for i, w := range strings.Fields(v) {
			out = append(out, stream.KV(w, int64(i)))
		}
		return out
	}).To("out", serde.String, serde.Int64)
	d := drive(t, b)
	pipeKVs(t, strIn(d, "in"), skv("k", "x y z"), skv("k", ""), skv("k", "w"))
	expectKVs(t, streamtest.OutputTopic(d, "out", serde.String, serde.Int64),
		stream.KV("x", int64(0)), stream.KV("y", int64(1)), stream.KV("z", int64(2)), stream.KV("w", int64(0)))
}

func TestFlatMapValues(t *testing.T) {
	b := stream.NewBuilder()
	stream.FlatMapValues(stream.From(b, "in", serde.String, serde.String), strings.Fields).To("out", serde.String, serde.String)
	d := drive(t, b)
	pipeKVs(t, strIn(d, "in"), skv("k1", "a b"), skv("k2", "   "), skv("k3", "c"))
	expectKVs(t, strOut(d, "out"), skv("k1", "a"), skv("k1", "b"), skv("k3", "c"))
}

func TestSelectKey(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	stream.SelectKey(src, func(k, v string) int64 { return int64(len(v)) }).To("out", serde.Int64, serde.String)
	d := drive(t, b)
	pipeKVs(t, strIn(d, "in"), skv("a", "four"))
	expectKVs(t, streamtest.OutputTopic(d, "out", serde.Int64, serde.String), stream.KV(int64(4), "four"))
}

func TestPeekAndForEach(t *testing.T) {
	b := stream.NewBuilder()
	var peeked, each []kv
	src := stream.From(b, "in", serde.String, serde.String)
	src.Peek(func(k, v string) { peeked = append(peeked, skv(k, v)) }).To("out", serde.String, serde.String)
	src.ForEach(func(k, v string) { each = append(each, skv(k, v)) })
	d := drive(t, b)
	pipeKVs(t, strIn(d, "in"), skv("a", "1"), skv("b", "2"))
	want := []kv{skv("a", "1"), skv("b", "2")}
	if !slices.Equal(peeked, want) || !slices.Equal(each, want) {
		t.Fatalf("Peek saw %v, ForEach saw %v; want %v", peeked, each, want)
	}
	expectKVs(t, strOut(d, "out"), want...)
}

func TestSplit(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.Int64)
	branches := src.Split(stream.Named("num-")).
		Branch("neg", func(_ string, v int64) bool { return v < 0 }).
		Branch("small", func(_ string, v int64) bool { return v < 10 }).
		Branch("", func(_ string, v int64) bool { return v < 100 }). // positional name "3"
		DefaultBranch("big")
	names := slices.Sorted(maps.Keys(branches))
	if want := []string{"num-3", "num-big", "num-neg", "num-small"}; !slices.Equal(names, want) {
		t.Fatalf("branch names = %v, want %v", names, want)
	}
	for name, s := range branches {
		s.To(strings.TrimPrefix(name, "num-"), serde.String, serde.Int64)
	}
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if got := graph.Of(topo).Children("num-"); !slices.Equal(got, []string{"num-neg", "num-small", "num-3", "num-big"}) {
		t.Fatalf("split node children = %v", got)
	}
	d := drive(t, b)
	in := streamtest.InputTopic(d, "in", serde.String, serde.Int64)
	for _, v := range []int64{-5, 3, 50, 500, -1} { // -5 and -1 also match "small": first match wins
		pipeKVs(t, in, stream.KV("k", v))
	}
	out := func(topic string) *streamtest.Output[string, int64] {
		return streamtest.OutputTopic(d, topic, serde.String, serde.Int64)
	}
	expectKVs(t, out("neg"), stream.KV("k", int64(-5)), stream.KV("k", int64(-1)))
	expectKVs(t, out("small"), stream.KV("k", int64(3)))
	expectKVs(t, out("3"), stream.KV("k", int64(50)))
	expectKVs(t, out("big"), stream.KV("k", int64(500)))
}

func TestSplitNoDefaultDrops(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	branches := src.Split().
		Branch("a", func(k, _ string) bool { return k == "a" }).
		NoDefaultBranch()
	if len(branches) != 1 {
		t.Fatalf("branches = %v, want one", slices.Collect(maps.Keys(branches)))
	}
	for name, s := range branches {
		// Generated prefix: the split node's name, with no separator.
		if name != "KSTREAM-BRANCH-0000000001a" {
			t.Fatalf("branch name = %q, want KSTREAM-BRANCH-0000000001a", name)
		}
		s.To("out", serde.String, serde.String)
	}
	d := drive(t, b)
	pipeKVs(t, strIn(d, "in"), skv("a", "1"), skv("b", "2"), skv("a", "3"))
	expectKVs(t, strOut(d, "out"), skv("a", "1"), skv("a", "3"))
}

func TestSplitDefaultBranchName(t *testing.T) {
	b := stream.NewBuilder()
	branches := stream.From(b, "in", serde.String, serde.String).Split(stream.Named("s-")).
		Branch("", func(k, _ string) bool { return k == "x" }).
		DefaultBranch("")
	if _, ok := branches["s-1"]; !ok {
		t.Errorf("unnamed first branch missing: %v", slices.Collect(maps.Keys(branches)))
	}
	if _, ok := branches["s-0"]; !ok {
		t.Errorf("unnamed default branch is not s-0: %v", slices.Collect(maps.Keys(branches)))
	}
	branches["s-0"].To("default", serde.String, serde.String)
	d := drive(t, b)
	pipeKVs(t, strIn(d, "in"), skv("x", "1"), skv("y", "2"))
	expectKVs(t, strOut(d, "default"), skv("y", "2"))
}

func TestMerge(t *testing.T) {
	b := stream.NewBuilder()
	a := stream.From(b, "a", serde.String, serde.String)
	c := stream.MapValues(stream.From(b, "c", serde.String, serde.String), strings.ToUpper)
	a.Merge(c).To("out", serde.String, serde.String)
	d := drive(t, b)
	pipeKVs(t, strIn(d, "a"), skv("1", "a1"))
	pipeKVs(t, strIn(d, "c"), skv("2", "c2"))
	pipeKVs(t, strIn(d, "a"), skv("3", "a3"))
	expectKVs(t, strOut(d, "out"), skv("1", "a1"), skv("2", "C2"), skv("3", "a3"))
}

func TestToFunc(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.String).ToFunc(func(rec topology.Record[string, string]) string {
		return "out-" + rec.Key
	}, serde.String, serde.String)
	d := drive(t, b)
	pipeKVs(t, strIn(d, "in"), skv("x", "1"), skv("y", "2"), skv("x", "3"))
	expectKVs(t, strOut(d, "out-x"), skv("x", "1"), skv("x", "3"))
	expectKVs(t, strOut(d, "out-y"), skv("y", "2"))
}

func TestToFuncEmptyTopicFails(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.String).ToFunc(func(rec topology.Record[string, string]) string {
		return rec.Value
	}, serde.String, serde.String, stream.Named("router"))
	d := drive(t, b)
	err := strIn(d, "in").Pipe("k", "")
	var pe *topology.ProcessingError
	if !errors.As(err, &pe) || pe.Node != "router" || !strings.Contains(err.Error(), "empty topic") {
		t.Fatalf("Pipe = %v, want a ProcessingError of node router about the empty topic", err)
	}
}

func TestToWithPartitioner(t *testing.T) {
	type call struct {
		topic string
		key   string
		value int64
		n     int32
	}
	var calls []call
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.Int64).
		WithPartitioner(func(topic, key string, value int64, n int32) int32 {
			calls = append(calls, call{topic, key, value, n})
			return int32(value) // 0 is valid, 1 is not: every driver topic has one partition
		}).
		To("out", serde.String, serde.Int64, stream.Named("sink"))
	d := drive(t, b)
	in := streamtest.InputTopic(d, "in", serde.String, serde.Int64)
	pipeKVs(t, in, stream.KV("k", int64(0)))
	if want := []call{{"out", "k", 0, 1}}; !slices.Equal(calls, want) {
		t.Fatalf("partitioner calls = %v, want %v", calls, want)
	}
	expectKVs(t, streamtest.OutputTopic(d, "out", serde.String, serde.Int64), stream.KV("k", int64(0)))

	err := in.Pipe("k", 1)
	var pe *topology.ProcessingError
	if !errors.As(err, &pe) || pe.Node != "sink" || !strings.Contains(err.Error(), "partition 1") {
		t.Fatalf("Pipe with an out-of-range partition = %v, want a ProcessingError of node sink", err)
	}
	if !streamtest.OutputTopic(d, "out", serde.String, serde.Int64).IsEmpty() {
		t.Fatal("a record with an invalid partition was produced")
	}
}

func TestRepartition(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	rekeyed := stream.SelectKey(src, func(_, v string) string { return v })
	var md []topology.RecordMetadata
	after := rekeyed.Repartition(serde.String, serde.String, stream.Named("by-value"))
	stream.ProcessValues(after, supply(topology.ProcessorFuncs[string, string, string, string]{
		OnProcess: func(ctx topology.ProcessorContext[string, string], rec topology.Record[string, string]) error {
			m, _ := ctx.RecordMetadata()
			md = append(md, m)
			if ctx.TaskID().Subtopology != 1 {
				t.Errorf("downstream of the repartition runs in task %v, want subtopology 1", ctx.TaskID())
			}
			return ctx.Forward(rec)
		},
	})).To("out", serde.String, serde.String)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(graph.Of(topo).Subtopologies()); n != 2 {
		t.Fatalf("%d subtopologies, want 2", n)
	}
	if _, ok := graph.Of(topo).InternalTopic("by-value-repartition"); !ok {
		t.Fatalf("internal topics = %v, want by-value-repartition", graph.Of(topo).InternalTopics())
	}
	d := drive(t, b, streamtest.Config{AppID: "app"})
	pipeKVs(t, strIn(d, "in"), skv("k1", "x"), skv("k2", "y"))
	want := []kv{skv("x", "x"), skv("y", "y")}
	// The records went through the internal topic...
	expectKVs(t, strOut(d, "app-by-value-repartition"), want...)
	// ...and reached downstream from it, before Pipe returned.
	expectKVs(t, strOut(d, "out"), want...)
	wantMD := []topology.RecordMetadata{{Topic: "app-by-value-repartition", Offset: 0}, {Topic: "app-by-value-repartition", Offset: 1}}
	if !slices.Equal(md, wantMD) {
		t.Fatalf("downstream record metadata = %v, want %v", md, wantMD)
	}
}

func TestRepartitionGeneratedName(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.String).Repartition(serde.String, serde.String).To("out", serde.String, serde.String)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	its := graph.Of(topo).InternalTopics()
	if len(its) != 1 || !regexp.MustCompile(`^KSTREAM-REPARTITION-\d{10}-repartition$`).MatchString(its[0].Name) || its[0].Kind != graph.Repartition {
		t.Fatalf("internal topics = %+v", its)
	}
	d := drive(t, b)
	pipeKVs(t, strIn(d, "in"), skv("k", "v"))
	expectKVs(t, strOut(d, "streamtest-"+its[0].Name), skv("k", "v"))
	expectKVs(t, strOut(d, "out"), skv("k", "v"))
}

// TestHeadersAndTimestampsFlow checks that every stateless operator keeps the
// input record's timestamp and headers.
func TestHeadersAndTimestampsFlow(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	s1 := src.Filter(func(string, string) bool { return true }).FilterNot(func(string, string) bool { return false })
	s2 := stream.Map(s1, func(k, v string) (string, string) { return k, v })
	s3 := stream.MapValues(s2, func(v string) string { return v })
	s4 := stream.FlatMap(s3, func(k, v string) []kv { return []kv{skv(k, v)} })
	s5 := stream.FlatMapValues(s4, func(v string) []string { return []string{v} })
	s6 := stream.SelectKey(s5, func(k, _ string) string { return k }).Peek(func(string, string) {})
	s7 := s6.Split().Branch("all", func(string, string) bool { return true }).NoDefaultBranch()
	for _, s := range s7 {
		s.Merge(stream.From(b, "other", serde.String, serde.String)).Repartition(serde.String, serde.String).To("out", serde.String, serde.String)
	}
	d := drive(t, b)
	hdrs := []topology.Header{{Key: "trace", Value: []byte("abc")}, {Key: "n", Value: nil}}
	if err := strIn(d, "in").PipeRecord(topology.Record[string, string]{Key: "k", Value: "v", Timestamp: 987, Headers: hdrs}); err != nil {
		t.Fatal(err)
	}
	rec, err := strOut(d, "out").ReadRecord()
	if err != nil {
		t.Fatal(err)
	}
	if rec.Timestamp != 987 {
		t.Errorf("timestamp = %d, want 987", rec.Timestamp)
	}
	if len(rec.Headers) != 2 || rec.Headers[0].Key != "trace" || string(rec.Headers[0].Value) != "abc" || rec.Headers[1].Key != "n" {
		t.Errorf("headers = %v, want %v", rec.Headers, hdrs)
	}
}

func TestWithTimestampExtractor(t *testing.T) {
	b := stream.NewBuilder()
	var streamTimes []int64
	src := stream.WithTimestampExtractor(b, func(rec topology.Record[string, int64], streamTime int64) int64 {
		streamTimes = append(streamTimes, streamTime)
		return rec.Value
	}).From("in", serde.String, serde.Int64, stream.Named("src"))
	stream.ProcessValues(src, supply(topology.ProcessorFuncs[string, int64, string, int64]{
		OnProcess: func(ctx topology.ProcessorContext[string, int64], rec topology.Record[string, int64]) error {
			if ctx.StreamTime() != max(rec.Value, 500) {
				t.Errorf("stream time = %d after a record extracted at %d", ctx.StreamTime(), rec.Value)
			}
			return ctx.Forward(rec)
		},
	})).To("out", serde.String, serde.Int64)
	d := drive(t, b)
	in := streamtest.InputTopic(d, "in", serde.String, serde.Int64)
	pipeKVs(t, in, stream.KV("a", int64(500)), stream.KV("b", int64(200)))
	recs, err := streamtest.OutputTopic(d, "out", serde.String, serde.Int64).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Timestamp != 500 || recs[1].Timestamp != 200 {
		t.Fatalf("output = %+v, want timestamps 500, 200 from the values", recs)
	}
	if !slices.Equal(streamTimes, []int64{-1, 500}) {
		t.Fatalf("extractor saw stream times %v, want [-1 500]", streamTimes)
	}

	// As in Kafka Streams, a negative extracted timestamp drops the record.
	if err := in.Pipe("c", -1); err != nil {
		t.Fatalf("negative extracted timestamp: err = %v, want the record dropped", err)
	}
	if recs, err := streamtest.OutputTopic(d, "out", serde.String, serde.Int64).ReadAll(); err != nil || len(recs) != 0 {
		t.Fatalf("negative extracted timestamp: output %+v, %v; want none", recs, err)
	}
}

// TestNegativeTimestamp checks that without an extractor a negative Kafka
// timestamp fails the record, as Kafka Streams' FailOnInvalidTimestamp
// does, and that an extractor can replace it.
func TestNegativeTimestamp(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.String, stream.Named("src")).To("out", serde.String, serde.String)
	stream.WithTimestampExtractor(b, func(rec topology.Record[string, string], streamTime int64) int64 {
		if rec.Timestamp < 0 {
			return max(streamTime, 0)
		}
		return rec.Timestamp
	}).From("fixed", serde.String, serde.String, stream.Named("fixed-src")).To("out", serde.String, serde.String)
	d := drive(t, b)
	err := strIn(d, "in").PipeRecord(topology.Record[string, string]{Key: "k", Value: "v", Timestamp: -1})
	var pe *topology.ProcessingError
	if !errors.As(err, &pe) || pe.Node != "src" || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("negative Kafka timestamp: err = %v, want a ProcessingError of node src", err)
	}
	if !strOut(d, "out").IsEmpty() {
		t.Fatal("a record with a negative timestamp was produced")
	}

	d = drive(t, b)
	if err := strIn(d, "fixed").PipeRecord(topology.Record[string, string]{Key: "k", Value: "v", Timestamp: -1}); err != nil {
		t.Fatal(err)
	}
	if rec, err := strOut(d, "out").ReadRecord(); err != nil || rec.Timestamp != 0 {
		t.Fatalf("out = %+v, %v; want the record at 0", rec, err)
	}
}

// TestToIntermediateTopic checks that To and From of the same topic connect
// two subtopologies through it.
func TestToIntermediateTopic(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.String).To("mid", serde.String, serde.String)
	stream.MapValues(stream.From(b, "mid", serde.String, serde.String), func(v string) int64 {
		n, _ := strconv.ParseInt(v, 10, 64)
		return n * 2
	}).To("out", serde.String, serde.Int64)
	d := drive(t, b)
	in := strIn(d, "in")
	in.Advance(time.Second)
	pipeKVs(t, in, skv("k", "21"))
	rec, err := streamtest.OutputTopic(d, "out", serde.String, serde.Int64).ReadRecord()
	if err != nil || rec.Value != 42 || rec.Timestamp != 1000 {
		t.Fatalf("out = %+v, %v; want 42 at 1000", rec, err)
	}
}
