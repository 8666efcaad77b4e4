package stream_test

import (
	"slices"
	"testing"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/streamtest"
	"github.com/runnel-dev/runnel/topology"
)

// drive builds b and returns a driver for it, closed when the test ends.
func drive(t *testing.T, b *stream.Builder, cfg ...streamtest.Config) *streamtest.Driver {
	t.Helper()
	topo, err := b.Build()
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	var c streamtest.Config
	if len(cfg) > 0 {
		c = cfg[0]
	}
	d, err := streamtest.New(topo, c)
	if err != nil {
		t.Fatalf("streamtest.New: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

// strIn and strOut are string/string topics.
func strIn(d *streamtest.Driver, topic string) *streamtest.Input[string, string] {
	return streamtest.InputTopic(d, topic, serde.String, serde.String)
}

func strOut(d *streamtest.Driver, topic string) *streamtest.Output[string, string] {
	return streamtest.OutputTopic(d, topic, serde.String, serde.String)
}

// pipeKVs pipes key/value pairs and fails the test on an error.
func pipeKVs[K, V any](t *testing.T, in *streamtest.Input[K, V], kvs ...stream.KeyValue[K, V]) {
	t.Helper()
	for _, kv := range kvs {
		if err := in.Pipe(kv.Key, kv.Value); err != nil {
			t.Fatalf("Pipe(%v, %v): %v", kv.Key, kv.Value, err)
		}
	}
}

// readKVs reads every record of out as key-value pairs.
func readKVs[K, V any](t *testing.T, out *streamtest.Output[K, V]) []stream.KeyValue[K, V] {
	t.Helper()
	recs, err := out.ReadAll()
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	kvs := make([]stream.KeyValue[K, V], len(recs))
	for i, r := range recs {
		kvs[i] = stream.KV(r.Key, r.Value)
	}
	return kvs
}

// expectKVs checks that out holds exactly want, in order.
func expectKVs[K, V comparable](t *testing.T, out *streamtest.Output[K, V], want ...stream.KeyValue[K, V]) {
	t.Helper()
	if got := readKVs(t, out); !slices.Equal(got, want) {
		t.Fatalf("output = %v, want %v", got, want)
	}
}

type kv = stream.KeyValue[string, string]

func skv(k, v string) kv { return stream.KV(k, v) }

// supply returns a processor supplier that copies p for every task.
func supply[K, V, KR, VR any](p topology.ProcessorFuncs[K, V, KR, VR]) func() topology.Processor[K, V, KR, VR] {
	return func() topology.Processor[K, V, KR, VR] { c := p; return &c }
}
