package stream_test

import (
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestOptionsAreCompileChecked type-checks snippets against the compiled
// stream package: an option of another family, and a timestamp extractor
// or partitioner of other key or value types than the operator's, must not
// compile, while Named and each family's own options must.
func TestOptionsAreCompileChecked(t *testing.T) {
	check := snippetChecker(t)
	ok := map[string]string{
		"Named and each family's options": `
			s := stream.From(b, "in", serde.String, serde.String, stream.Named("src"), stream.WithOffsetReset(topology.Latest))
			f := s.Filter(func(string, string) bool { return true }, stream.Named("f"))
			f.To("out", serde.String, serde.String, stream.Named("sink"))
			f.Repartition(serde.String, serde.String, stream.Named("rp"), stream.WithPartitions(2))
			g := f.GroupByKey(serde.String, serde.String, stream.Named("g"))
			g.Count(stream.Named("c"), stream.Materialized("counts"), stream.WithInMemoryStore(), stream.WithCachingDisabled())
			tb := stream.Table(b, "t", serde.String, serde.String, stream.Named("t"), stream.WithOffsetReset(topology.Latest), stream.Materialized("t"), stream.WithLoggingDisabled())
			stream.TableMapValues(tb, strings.ToUpper, stream.Named("m"))
			stream.AddKeyValueStore(b, "kv", serde.String, serde.String, stream.WithCachingEnabled())
			stream.ProcessValues(s, func() topology.Processor[string, string, string, string] { return nil }, stream.Named("p"), stream.WithStores("kv"))`,
		"typed callbacks of the operator's types": `
			s := stream.WithTimestampExtractor(b, func(rec topology.Record[string, int64], _ int64) int64 { return rec.Value }).
				From("in", serde.String, serde.Int64)
			s.WithPartitioner(func(_ string, _ string, v int64, _ int32) int32 { return int32(v) }).To("out", serde.String, serde.Int64)`,
	}
	for name, body := range ok {
		if err := check(body); err != nil {
			t.Errorf("%s: %v, want it to compile", name, err)
		}
	}
	bad := []struct{ name, body, want string }{
		{"store option on a stream Filter",
			`stream.From(b, "in", serde.String, serde.String).Filter(func(string, string) bool { return true }, stream.WithInMemoryStore())`,
			"stream.StoreOption does not implement stream.Option"},
		{"Materialized on a table Filter",
			`stream.Table(b, "t", serde.String, serde.String).Filter(func(string, string) bool { return true }, stream.Materialized("x"))`,
			"stream.MaterializedOption does not implement stream.Option"},
		{"store option on TableMapValues",
			`stream.TableMapValues(stream.Table(b, "t", serde.String, serde.String), strings.ToUpper, stream.WithLoggingDisabled())`,
			"stream.StoreOption does not implement stream.Option"},
		{"offset reset on a sink",
			`stream.From(b, "in", serde.String, serde.String).To("out", serde.String, serde.String, stream.WithOffsetReset(topology.Latest))`,
			"stream.SourceOption does not implement stream.SinkOption"},
		{"partition count on a sink",
			`stream.From(b, "in", serde.String, serde.String).To("out", serde.String, serde.String, stream.WithPartitions(3))`,
			"stream.RepartitionOption does not implement stream.SinkOption"},
		{"WithStores on an aggregation",
			`stream.From(b, "in", serde.String, serde.String).GroupByKey(serde.String, serde.String).Count(stream.WithStores("kv"))`,
			"stream.ProcessorOption does not implement stream.MaterializedOption"},
		{"Materialized on AddKeyValueStore",
			`stream.AddKeyValueStore(b, "kv", serde.String, serde.String, stream.Materialized("other"))`,
			"stream.MaterializedOption does not implement stream.StoreOption"},
		{"Named on AddKeyValueStore",
			`stream.AddKeyValueStore(b, "kv", serde.String, serde.String, stream.Named("other"))`,
			"stream.Option does not implement stream.StoreOption"},
		{"timestamp extractor of another value type",
			`stream.WithTimestampExtractor(b, func(rec topology.Record[string, int64], _ int64) int64 { return rec.Value }).
				From("in", serde.String, serde.String)`,
			"cannot use serde.String (variable of interface type serde.Serde[string]) as serde.Serde[int64] value"},
		{"timestamp extractor of another key type on a table",
			`stream.WithTimestampExtractor(b, func(rec topology.Record[int64, string], _ int64) int64 { return rec.Key }).
				Table("t", serde.String, serde.String)`,
			"as serde.Serde[int64] value"},
		{"partitioner of another value type",
			`stream.From(b, "in", serde.String, serde.String).
				WithPartitioner(func(_ string, _ string, v int64, _ int32) int32 { return int32(v) })`,
			"(value of type func(_ string, _ string, v int64, _ int32) int32) as stream.Partitioner[string, string] value"},
	}
	for _, tc := range bad {
		err := check(tc.body)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: type-check error = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// snippetChecker returns a function that type-checks body as the body of
// func(b *stream.Builder), importing serde, stream, topology and strings,
// against the packages' export data built by go list.
func snippetChecker(t *testing.T) func(body string) error {
	t.Helper()
	out, err := exec.Command("go", "list", "-export", "-deps", "-f", "{{.ImportPath}}={{.Export}}",
		"github.com/runnel-dev/runnel/stream", "strings").Output()
	if err != nil {
		t.Fatalf("go list -export: %v", err)
	}
	exports := map[string]string{}
	for line := range strings.Lines(string(out)) {
		path, file, _ := strings.Cut(strings.TrimSpace(line), "=")
		exports[path] = file
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		return os.Open(exports[path])
	})
	return func(body string) error {
		src := `package p

import (
	"strings"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/topology"
)

var _ = strings.ToUpper

func f(b *stream.Builder) {
` + body + `
}
`
		file, err := parser.ParseFile(fset, "snippet.go", src, 0)
		if err != nil {
			t.Fatalf("parsing snippet: %v\n%s", err, body)
		}
		_, err = (&types.Config{Importer: imp}).Check("p", fset, []*ast.File{file}, nil)
		return err
	}
}
