package serde_test

import (
	"testing"

	"github.com/runnel-dev/runnel/serde"
)

// Sinks keep the compiler from discarding benchmarked results.
var (
	sinkBytes  []byte
	sinkString string
	sinkInt64  int64
	sinkOrder  order
)

func BenchmarkString(b *testing.B) {
	const v = "order-00000000042"
	data := []byte(v)
	b.Run("Serialize", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkBytes, _ = serde.String.Serialize(topic, v)
		}
	})
	b.Run("Deserialize", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkString, _ = serde.String.Deserialize(topic, data)
		}
	})
}

func BenchmarkBytes(b *testing.B) {
	data := make([]byte, 256)
	b.Run("Serialize", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkBytes, _ = serde.Bytes.Serialize(topic, data)
		}
	})
	b.Run("Deserialize", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkBytes, _ = serde.Bytes.Deserialize(topic, data)
		}
	})
}

func BenchmarkInt64(b *testing.B) {
	data, _ := serde.Int64.Serialize(topic, 1<<40)
	b.Run("Serialize", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkBytes, _ = serde.Int64.Serialize(topic, 1<<40)
		}
	})
	b.Run("Deserialize", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkInt64, _ = serde.Int64.Deserialize(topic, data)
		}
	})
}

func BenchmarkJSON(b *testing.B) {
	s := serde.JSON[order]()
	v := order{ID: 42, Item: "green tea", Price: 3.25, Tags: []string{"tea", "green"}}
	data, err := s.Serialize(topic, v)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Serialize", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkBytes, _ = s.Serialize(topic, v)
		}
	})
	b.Run("Deserialize", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkOrder, _ = s.Deserialize(topic, data)
		}
	})
}
