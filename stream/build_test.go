package stream_test

import (
	"errors"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/topology"
)

// sstream is a stream of string keys and values.
type sstream = stream.KStream[string, string]

// buildErr builds b, expecting a failure; it returns the error.
func buildErr(t *testing.T, b *stream.Builder) error {
	t.Helper()
	topo, err := b.Build()
	if err == nil {
		t.Fatal("Build succeeded, want an error")
	}
	if topo != nil {
		t.Error("Build returned a topology together with an error")
	}
	if !errors.Is(err, topology.ErrInvalid) {
		t.Errorf("Build error %v does not match topology.ErrInvalid", err)
	}
	return err
}

// nodeErrors flattens err into its *topology.NodeError values.
func nodeErrors(err error) []*topology.NodeError {
	var out []*topology.NodeError
	var ne *topology.NodeError
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			out = append(out, nodeErrors(inner)...)
		}
	default:
		if errors.As(err, &ne) {
			out = append(out, ne)
		}
	}
	return out
}

// expectNodeError checks that err holds a NodeError for node whose message
// contains what.
func expectNodeError(t *testing.T, err error, node, what string) {
	t.Helper()
	for _, ne := range nodeErrors(err) {
		if ne.Node == node && strings.Contains(ne.Err.Error(), what) {
			return
		}
	}
	t.Errorf("Build error %q has no error about node %q containing %q", err, node, what)
}

func TestBuildNilArguments(t *testing.T) {
	var nilString serde.Serde[string]
	named := stream.Named("op")
	tests := []struct {
		name string
		add  func(b *stream.Builder, s sstream)
		node string
		what string
	}{
		{"Filter", func(b *stream.Builder, s sstream) { s.Filter(nil, named) }, "op", "predicate is nil"},
		{"FilterNot", func(b *stream.Builder, s sstream) { s.FilterNot(nil, named) }, "op", "predicate is nil"},
		{"Map", func(b *stream.Builder, s sstream) {
			stream.Map[string, string, string, string](s, nil, named)
		}, "op", "mapper is nil"},
		{"MapValues", func(b *stream.Builder, s sstream) {
			stream.MapValues[string, string, string](s, nil, named)
		}, "op", "mapper is nil"},
		{"FlatMap", func(b *stream.Builder, s sstream) {
			stream.FlatMap[string, string, string, string](s, nil, named)
		}, "op", "mapper is nil"},
		{"FlatMapValues", func(b *stream.Builder, s sstream) {
			stream.FlatMapValues[string, string, string](s, nil, named)
		}, "op", "mapper is nil"},
		{"SelectKey", func(b *stream.Builder, s sstream) {
			stream.SelectKey[string, string, string](s, nil, named)
		}, "op", "key selector is nil"},
		{"Peek", func(b *stream.Builder, s sstream) { s.Peek(nil, named) }, "op", "action is nil"},
		{"ForEach", func(b *stream.Builder, s sstream) { s.ForEach(nil, named) }, "op", "action is nil"},
		{"Process", func(b *stream.Builder, s sstream) {
			stream.Process[string, string, string, string](s, nil, named)
		}, "op", "processor supplier is nil"},
		{"ProcessValues", func(b *stream.Builder, s sstream) {
			stream.ProcessValues[string, string, string](s, nil, named)
		}, "op", "processor supplier is nil"},
		{"Branch", func(b *stream.Builder, s sstream) {
			s.Split(stream.Named("split-")).Branch("b", nil).NoDefaultBranch()
		}, "split-b", "predicate is nil"},
		{"ToFunc", func(b *stream.Builder, s sstream) {
			s.ToFunc(nil, serde.String, serde.String, named)
		}, "op", "topic name extractor is nil"},
		{"To key serde", func(b *stream.Builder, s sstream) { s.To("out", nilString, serde.String, named) }, "op", "key serde is nil"},
		{"To value serde", func(b *stream.Builder, s sstream) { s.To("out", serde.String, nilString, named) }, "op", "value serde is nil"},
		{"Repartition serde", func(b *stream.Builder, s sstream) {
			s.Repartition(nilString, serde.String, stream.Named("rp"))
		}, "rp-repartition-sink", "key serde is nil"},
		{"From key serde", func(b *stream.Builder, s sstream) {
			stream.From(b, "other", nilString, serde.String, named)
		}, "op", "key serde is nil"},
		{"From value serde", func(b *stream.Builder, s sstream) {
			stream.From(b, "other", serde.String, nilString, named)
		}, "op", "value serde is nil"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := stream.NewBuilder()
			tc.add(b, stream.From(b, "in", serde.String, serde.String))
			err := buildErr(t, b)
			expectNodeError(t, err, tc.node, tc.what)
			if !strings.Contains(err.Error(), `"`+tc.node+`"`) {
				t.Errorf("error message %q does not name node %q", err, tc.node)
			}
		})
	}
}

func TestBuildDuplicateNames(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	src.Filter(func(string, string) bool { return true }, stream.Named("dup"))
	src.Peek(func(string, string) {}, stream.Named("dup"))
	err := buildErr(t, b)
	expectNodeError(t, err, "dup", "name is used by another")
}

func TestBuildTwoSourcesSameTopic(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.String, stream.Named("first"))
	stream.From(b, "in", serde.String, serde.Int64, stream.Named("second"))
	err := buildErr(t, b)
	expectNodeError(t, err, "second", `topic "in" is already read by source "first"`)
}

func TestBuildMergeAcrossBuilders(t *testing.T) {
	b1, b2 := stream.NewBuilder(), stream.NewBuilder()
	a := stream.From(b1, "a", serde.String, serde.String)
	c := stream.From(b2, "c", serde.String, serde.String)
	a.Merge(c, stream.Named("merge"))
	err := buildErr(t, b1)
	expectNodeError(t, err, "merge", "different builders")
}

func TestBuildEmptyTopic(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.String).To("", serde.String, serde.String, stream.Named("sink"))
	err := buildErr(t, b)
	expectNodeError(t, err, "sink", "empty topic name")

	b = stream.NewBuilder()
	stream.From(b, "", serde.String, serde.String, stream.Named("src"))
	expectNodeError(t, buildErr(t, b), "src", "empty topic name")
}

func TestBuildInvalidRepartition(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	src.Repartition(serde.String, serde.String, stream.Named("bad name!"))
	src.Repartition(serde.String, serde.String, stream.Named("neg"), stream.WithPartitions(-1))
	err := buildErr(t, b)
	expectNodeError(t, err, "bad name!", "not a valid topic name")
	expectNodeError(t, err, "neg", "partition count -1")
}

func TestBuildReportsEveryProblem(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	src.Filter(nil, stream.Named("nil-filter"))
	src.To("", serde.String, serde.String, stream.Named("no-topic"))
	src.Peek(func(string, string) {}, stream.Named("twice"))
	src.Peek(func(string, string) {}, stream.Named("twice"))
	stream.From(b, "in", serde.String, serde.String, stream.Named("again"))
	err := buildErr(t, b)
	expectNodeError(t, err, "nil-filter", "predicate is nil")
	expectNodeError(t, err, "no-topic", "empty topic name")
	expectNodeError(t, err, "twice", "name is used by another")
	expectNodeError(t, err, "again", "already read")
	if n := len(nodeErrors(err)); n != 4 {
		t.Errorf("got %d node errors, want 4: %v", n, err)
	}
}

func TestBuildAgainIsIndependent(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	first, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	src.To("out", serde.String, serde.String)
	second, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if len(graph.Of(first).Nodes()) != 1 || len(graph.Of(second).Nodes()) != 2 {
		t.Fatalf("nodes: first build %d, second %d; want 1 and 2", len(graph.Of(first).Nodes()), len(graph.Of(second).Nodes()))
	}
	if !regexp.MustCompile(`^KSTREAM-SINK-\d{10}$`).MatchString(graph.Of(second).Nodes()[1].Name) {
		t.Errorf("generated sink name %q", graph.Of(second).Nodes()[1].Name)
	}
}

// TestRepartitionNames checks Kafka Streams' repartition() naming: the topic
// name, the filter, sink and source node names, and the numbers taken from
// the name counter (seen in the name of the next generated node).
func TestRepartitionNames(t *testing.T) {
	tests := []struct {
		name                        string
		opts                        []stream.RepartitionOption
		topic, filter, sink, source string
		next                        string
	}{
		{"unnamed", nil, "KSTREAM-REPARTITION-0000000001-repartition",
			"KSTREAM-FILTER-0000000003", "KSTREAM-SINK-0000000002", "KSTREAM-SOURCE-0000000004", "KSTREAM-PEEK-0000000005"},
		{"named", []stream.RepartitionOption{stream.Named("foo")}, "foo-repartition",
			"foo-repartition-filter", "foo-repartition-sink", "foo-repartition-source", "KSTREAM-PEEK-0000000004"},
		{"named with suffix", []stream.RepartitionOption{stream.Named("foo-repartition")}, "foo-repartition",
			"foo-repartition-filter", "foo-repartition-sink", "foo-repartition-source", "KSTREAM-PEEK-0000000004"},
		{"named like a generated name", []stream.RepartitionOption{stream.Named("KSTREAM-X-0000000042")}, "KSTREAM-X-0000000042-repartition",
			"KSTREAM-FILTER-0000000002", "KSTREAM-SINK-0000000001", "KSTREAM-SOURCE-0000000003", "KSTREAM-PEEK-0000000004"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := stream.NewBuilder()
			stream.From(b, "in", serde.String, serde.String).
				Repartition(serde.String, serde.String, tc.opts...).
				Peek(func(string, string) {})
			topo, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}
			if its := graph.Of(topo).InternalTopics(); len(its) != 1 || its[0].Name != tc.topic {
				t.Errorf("internal topics = %+v, want %s", its, tc.topic)
			}
			var names []string
			for _, n := range graph.Of(topo).Nodes() {
				names = append(names, n.Name)
			}
			want := []string{"KSTREAM-SOURCE-0000000000", tc.filter, tc.sink, tc.source, tc.next}
			if !slices.Equal(names, want) {
				t.Fatalf("nodes = %v, want %v", names, want)
			}
			if got := graph.Of(topo).Children(tc.filter); !slices.Equal(got, []string{tc.sink}) {
				t.Errorf("filter children = %v, want the sink", got)
			}
			if n := graph.Of(topo).Node(tc.sink); n.Kind != graph.SinkKind || !slices.Equal(n.Topics, []string{tc.topic}) {
				t.Errorf("sink %+v does not write %s", n, tc.topic)
			}
			if n := graph.Of(topo).Node(tc.source); n.Kind != graph.SourceKind || !slices.Equal(n.Topics, []string{tc.topic}) {
				t.Errorf("source %+v does not read %s", n, tc.topic)
			}
		})
	}
}

// TestSplitNames checks Kafka Streams' split() naming: branch names append
// the branch name or 1-based position (0 for the default branch) to the
// split node's name, and every branch takes a number from the name counter.
func TestSplitNames(t *testing.T) {
	always := func(string, string) bool { return true }
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	gen := src.Split().Branch("", always).Branch("x", always).Branch("", always).DefaultBranch("")
	named := src.Split(stream.Named("s")).Branch("", always).NoDefaultBranch()
	src.Peek(func(string, string) {})
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := slices.Sorted(maps.Keys(gen)), []string{
		"KSTREAM-BRANCH-00000000010", "KSTREAM-BRANCH-00000000011", "KSTREAM-BRANCH-00000000013", "KSTREAM-BRANCH-0000000001x",
	}; !slices.Equal(got, want) {
		t.Errorf("branches = %v, want %v", got, want)
	}
	if got := slices.Collect(maps.Keys(named)); !slices.Equal(got, []string{"s1"}) {
		t.Errorf("named split branches = %v, want [s1]", got)
	}
	// Split 1, its branches 2-5, split "s" 6, its branch 7: the Peek is 8.
	if n := graph.Of(topo).Nodes()[len(graph.Of(topo).Nodes())-1].Name; n != "KSTREAM-PEEK-0000000008" {
		t.Errorf("node after the splits = %s, want KSTREAM-PEEK-0000000008", n)
	}
}
