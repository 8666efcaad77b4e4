package stream_test

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/topology"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// linesplit is Kafka Streams' LineSplit demo.
func linesplit(t *testing.T) *topology.Topology {
	t.Helper()
	b := stream.NewBuilder()
	src := stream.From(b, "streams-plaintext-input", serde.String, serde.String)
	stream.FlatMapValues(src, strings.Fields).To("streams-linesplit-output", serde.String, serde.String)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// rekeyed re-keys orders by customer through a repartition topic, so it has
// two subtopologies.
func rekeyed(t *testing.T) *topology.Topology {
	t.Helper()
	b := stream.NewBuilder()
	orders := stream.From(b, "orders", serde.String, serde.String)
	byCustomer := stream.SelectKey(orders, func(_, v string) string { return v }).
		Repartition(serde.String, serde.String, stream.Named("by-customer"))
	valid := byCustomer.Filter(func(_, v string) bool { return v != "" })
	valid.To("orders-by-customer", serde.String, serde.String)
	valid.ForEach(func(string, string) {}, stream.Named("audit"))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestDescribeGolden(t *testing.T) {
	for name, topo := range map[string]*topology.Topology{
		"linesplit": linesplit(t), "repartition": rekeyed(t),
		"wordcount": build(t, func(b *stream.Builder) { wordCount(b) }), "regioncounts": build(t, func(b *stream.Builder) { userRegions(b) }),
	} {
		t.Run(name, func(t *testing.T) {
			golden(t, name+".describe.txt", topo.Describe())
			golden(t, name+".mermaid", topo.Mermaid())
		})
	}
}

// TestDescribeMatchesKafkaStreams compares with the TopologyDescription that
// Kafka Streams prints for its LineSplit demo (from its documentation).
func TestDescribeMatchesKafkaStreams(t *testing.T) {
	const want = `Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [streams-plaintext-input])
      --> KSTREAM-FLATMAPVALUES-0000000001
    Processor: KSTREAM-FLATMAPVALUES-0000000001 (stores: [])
      --> KSTREAM-SINK-0000000002
      <-- KSTREAM-SOURCE-0000000000
    Sink: KSTREAM-SINK-0000000002 (topic: streams-linesplit-output)
      <-- KSTREAM-FLATMAPVALUES-0000000001

`
	if got := linesplit(t).Describe(); got != want {
		t.Fatalf("Describe() =\n%s\nwant Kafka Streams' shape:\n%s", got, want)
	}
}

func TestDescribeShape(t *testing.T) {
	got := rekeyed(t).Describe()
	subs := regexp.MustCompile(`(?m)^ {2,3}Sub-topology: (\d+)$`).FindAllStringSubmatch(got, -1)
	if len(subs) != 2 || subs[0][1] != "0" || subs[1][1] != "1" {
		t.Fatalf("sub-topology headers %v, want 0 and 1:\n%s", subs, got)
	}
	if !strings.HasPrefix(got, "Topologies:\n   Sub-topology: 0\n") {
		t.Errorf("Describe does not start like Kafka Streams':\n%s", got)
	}
	if !strings.Contains(got, "\n\n  Sub-topology: 1\n") {
		t.Errorf("sub-topologies are not separated by a blank line:\n%s", got)
	}
	for _, want := range []string{
		"    Sink: by-customer-repartition-sink (topic: by-customer-repartition)\n",
		"    Source: by-customer-repartition-source (topics: [by-customer-repartition])\n",
		"    Processor: audit (stores: [])\n      --> none\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Describe lacks %q:\n%s", want, got)
		}
	}
	// Every node line is followed by its edges: "-->" for sources and
	// processors, "<--" for processors and sinks.
	lines := strings.Split(got, "\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "    Source: "):
			if !strings.HasPrefix(lines[i+1], "      --> ") {
				t.Errorf("source line %q not followed by -->", l)
			}
		case strings.HasPrefix(l, "    Processor: "):
			if !strings.HasPrefix(lines[i+1], "      --> ") || !strings.HasPrefix(lines[i+2], "      <-- ") {
				t.Errorf("processor line %q not followed by --> and <--", l)
			}
		case strings.HasPrefix(l, "    Sink: "):
			if !strings.HasPrefix(lines[i+1], "      <-- ") {
				t.Errorf("sink line %q not followed by <--", l)
			}
		}
	}
}

func TestMermaidShape(t *testing.T) {
	got := rekeyed(t).Mermaid()
	for _, want := range []string{
		"flowchart TD\n",
		`subgraph sub0 ["Sub-topology 0"]`,
		`subgraph sub1 ["Sub-topology 1"]`,
		`[/"by-customer-repartition"/]`,
		`[/"orders"/]`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Mermaid lacks %q:\n%s", want, got)
		}
	}
}

// TestDescribeSplitRepartition checks generated names and node order against
// what Kafka Streams prints for the same program:
//
//	KStream<String, String> src = builder.stream("in");
//	Map<String, KStream<String, String>> br = src.split()
//	    .branch((k, v) -> k.startsWith("a"), Branched.as("a"))
//	    .branch((k, v) -> k.startsWith("b"))
//	    .defaultBranch();
//	br.get("KSTREAM-BRANCH-0000000001a").to("a");
//	br.get("KSTREAM-BRANCH-00000000012").repartition().to("b");
//	br.get("KSTREAM-BRANCH-00000000010").to((k, v, ctx) -> v);
//
// Every branch takes a number (2, 3, 4); the unnamed repartition takes one
// for its topic (6) and three for its sink, filter and source (7, 8, 9).
// Nodes are ordered by subtree size, then name. Kafka Streams prints the
// extractor sink as "(extractor class: <Java class>)".
func TestDescribeSplitRepartition(t *testing.T) {
	b := stream.NewBuilder()
	br := stream.From(b, "in", serde.String, serde.String).Split().
		Branch("a", func(k, _ string) bool { return strings.HasPrefix(k, "a") }).
		Branch("", func(k, _ string) bool { return strings.HasPrefix(k, "b") }).
		DefaultBranch("")
	br["KSTREAM-BRANCH-0000000001a"].To("a", serde.String, serde.String)
	br["KSTREAM-BRANCH-00000000012"].Repartition(serde.String, serde.String).To("b", serde.String, serde.String)
	br["KSTREAM-BRANCH-00000000010"].ToFunc(func(rec topology.Record[string, string]) string { return rec.Value }, serde.String, serde.String)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	const want = `Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [in])
      --> KSTREAM-BRANCH-0000000001
    Processor: KSTREAM-BRANCH-0000000001 (stores: [])
      --> KSTREAM-BRANCH-00000000012, KSTREAM-BRANCH-00000000010, KSTREAM-BRANCH-0000000001a
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-BRANCH-00000000012 (stores: [])
      --> KSTREAM-FILTER-0000000008
      <-- KSTREAM-BRANCH-0000000001
    Processor: KSTREAM-BRANCH-00000000010 (stores: [])
      --> KSTREAM-SINK-0000000011
      <-- KSTREAM-BRANCH-0000000001
    Processor: KSTREAM-BRANCH-0000000001a (stores: [])
      --> KSTREAM-SINK-0000000005
      <-- KSTREAM-BRANCH-0000000001
    Processor: KSTREAM-FILTER-0000000008 (stores: [])
      --> KSTREAM-SINK-0000000007
      <-- KSTREAM-BRANCH-00000000012
    Sink: KSTREAM-SINK-0000000005 (topic: a)
      <-- KSTREAM-BRANCH-0000000001a
    Sink: KSTREAM-SINK-0000000007 (topic: KSTREAM-REPARTITION-0000000006-repartition)
      <-- KSTREAM-FILTER-0000000008
    Sink: KSTREAM-SINK-0000000011 (topic extractor)
      <-- KSTREAM-BRANCH-00000000010

  Sub-topology: 1
    Source: KSTREAM-SOURCE-0000000009 (topics: [KSTREAM-REPARTITION-0000000006-repartition])
      --> KSTREAM-SINK-0000000010
    Sink: KSTREAM-SINK-0000000010 (topic: b)
      <-- KSTREAM-SOURCE-0000000009

`
	if got := topo.Describe(); got != want {
		t.Fatalf("Describe() =\n%s\nwant:\n%s", got, want)
	}
	golden(t, "split.mermaid", topo.Mermaid())
}

// TestDescribeOrder checks Kafka Streams' node order: a larger subtree first
// (a node reachable along two paths counts twice), then by name, for nodes
// and for successor and predecessor lists; and a pattern source's format.
func TestDescribeOrder(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.FromPattern(b, regexp.MustCompile(`in-.*`), serde.String, serde.String, stream.Named("src"))
	short := src.Peek(func(string, string) {}, stream.Named("a-short"))
	long := src.Peek(func(string, string) {}, stream.Named("z-long")).Peek(func(string, string) {}, stream.Named("z-long-2"))
	short.Merge(long, stream.Named("merge")).To("out", serde.String, serde.String, stream.Named("sink"))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	// Sizes: sink 1, merge 2, z-long-2 3, a-short 3, z-long 4, src 8.
	const want = `Topologies:
   Sub-topology: 0
    Source: src (topics: in-.*)
      --> z-long, a-short
    Processor: z-long (stores: [])
      --> z-long-2
      <-- src
    Processor: a-short (stores: [])
      --> merge
      <-- src
    Processor: z-long-2 (stores: [])
      --> merge
      <-- z-long
    Processor: merge (stores: [])
      --> sink
      <-- a-short, z-long-2
    Sink: sink (topic: out)
      <-- merge

`
	if got := topo.Describe(); got != want {
		t.Fatalf("Describe() =\n%s\nwant:\n%s", got, want)
	}
}
