package runtime_test

import (
	"bytes"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/internal/runtime"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kgo"
)

// sinkRecord keeps benchProducer's records on the heap, as handing them to
// a franz-go client does.
var sinkRecord *kgo.Record

// benchProducer is the Producer of the operator-chain benchmarks. It counts
// records instead of producing them. With asKgo set it first builds the
// *kgo.Record the runtime's Kafka producer would hand to franz-go (the same
// fields, one allocation), so allocs/record reflects what a task really
// costs up to the client; without it the number is the operator chain alone.
type benchProducer struct {
	asKgo bool
	sent  int
}

func (p *benchProducer) Send(rec graph.OutRecord) error {
	p.sent++
	if p.asKgo {
		sinkRecord = &kgo.Record{
			Topic: rec.Topic, Partition: rec.Partition, Key: rec.Key, Value: rec.Value,
			Headers: rec.Headers, Timestamp: time.UnixMilli(rec.Timestamp),
		}
	}
	return nil
}

func (p *benchProducer) PartitionCount(string) (int32, error) { return 3, nil }

func (p *benchProducer) LastOffset(string, int32) (int64, bool) { return 0, false }

// BenchmarkTaskChain runs pre-fetched Bytes records through a task the way a
// worker does (Add a fetched batch, ProcessNext until it is drained) and
// reports records/s and allocations per record (allocs/op: one op is one
// input record). Target: at most 3 allocs/record for the Bytes→Bytes pipe.
//
//	go test ./internal/runtime -run '^$' -bench TaskChain -benchtime 2s
func BenchmarkTaskChain(b *testing.B) {
	chains := []struct {
		name  string
		build func(*stream.Builder)
		// out is the number of output records per 2 inputs.
		out int
	}{
		{"Pipe", func(sb *stream.Builder) {
			stream.From(sb, "in", serde.Bytes, serde.Bytes).To("out", serde.Bytes, serde.Bytes)
		}, 2},
		{"FilterMapValues", func(sb *stream.Builder) {
			s := stream.From(sb, "in", serde.Bytes, serde.Bytes).
				Filter(func(_, v []byte) bool { return v[0]&1 == 0 }) // keeps half
			stream.MapValues(s, func(v []byte) []byte { return v[1:] }).To("out", serde.Bytes, serde.Bytes)
		}, 1},
	}
	for _, c := range chains {
		for _, asKgo := range []bool{false, true} {
			producer := "count"
			if asKgo {
				producer = "kgo"
			}
			b.Run(c.name+"/producer="+producer, func(b *testing.B) {
				sb := stream.NewBuilder()
				c.build(sb)
				topo, err := sb.Build()
				if err != nil {
					b.Fatal(err)
				}
				p := &benchProducer{asKgo: asKgo}
				task, err := runtime.NewTask(runtime.TaskConfig{AppID: "bench", Topology: graph.Of(topo), Producer: p})
				if err != nil {
					b.Fatal(err)
				}
				defer task.Close()
				batch := fetchedBatch("in", 0, 1024)
				b.ReportAllocs()
				var before, after goruntime.MemStats
				goruntime.ReadMemStats(&before)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if i%len(batch) == 0 { // the previous batch is used up
						task.Add(batch)
					}
					if ok, err := task.ProcessNext(); !ok || err != nil {
						b.Fatal(ok, err)
					}
				}
				b.StopTimer()
				goruntime.ReadMemStats(&after)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
				// allocs/op rounds down; this keeps the fraction (the
				// filter drops half the records before the producer).
				b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/record")
				if want := b.N * c.out / 2; p.sent < want-1 || p.sent > want+1 {
					b.Fatalf("sent %d records for %d inputs, want about %d", p.sent, b.N, want)
				}
			})
		}
	}
}

// fetchedBatch returns n records of one partition as a fetch returns them:
// 16-byte keys, 100-byte values (alternating first byte, so the filter
// keeps half), increasing offsets and timestamps.
func fetchedBatch(topic string, partition int32, n int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	ts := time.UnixMilli(1_700_000_000_000)
	for i := range recs {
		v := bytes.Repeat([]byte{'v'}, 100)
		v[0] = byte(i)
		recs[i] = &kgo.Record{
			Topic: topic, Partition: partition, Offset: int64(i),
			Key: []byte("key-000000000000"), Value: v, Timestamp: ts.Add(time.Duration(i) * time.Millisecond),
		}
	}
	return recs
}
