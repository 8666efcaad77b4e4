package stream_test

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestNewAppMetricsRegistration: metrics carry the app_id label, two apps
// with different ids share a registry, and a clash is a Config error
// instead of a panic.
func TestNewAppMetricsRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	newApp := func(id string) error {
		b := stream.NewBuilder()
		stream.From(b, "in", serde.Bytes, serde.Bytes).To("out", serde.Bytes, serde.Bytes)
		_, err := stream.NewApp(b, stream.Config{AppID: id, Brokers: []string{"127.0.0.1:9092"}, Registerer: reg})
		return err
	}
	if err := newApp("a"); err != nil {
		t.Fatal(err)
	}
	if err := newApp("b"); err != nil {
		t.Fatalf("second app with another id on the same registry: %v", err)
	}
	if err := newApp("a"); !errors.Is(err, stream.ErrConfig) {
		t.Fatalf("NewApp with a clashing registry = %v, want ErrConfig", err)
	}
	if got := e2eMetric(t, reg, "runnel_tasks", map[string]string{"app_id": "b"}); got != 0 {
		t.Fatalf("runnel_tasks{app_id=b} = %v, want 0 (registered, no tasks)", got)
	}
}

// TestAppNegativeExtractedTimestampCounted: a record whose extractor returns
// a negative timestamp is dropped (as in Kafka Streams) and counted.
func TestAppNegativeExtractedTimestampCounted(t *testing.T) {
	e := newE2E(t, 30*time.Second)
	e.topic("in", 1)
	e.topic("out", 1)
	e.produce(&kgo.Record{Topic: "in", Value: []byte("bad")}, &kgo.Record{Topic: "in", Value: []byte("good")})
	b := stream.NewBuilder()
	stream.WithTimestampExtractor(b, func(rec topology.Record[string, string], _ int64) int64 {
		if rec.Value == "bad" {
			return -1
		}
		return rec.Timestamp
	}).From("in", serde.String, serde.String).To("out", serde.String, serde.String)
	cfg, _ := e.config("negative-ts")
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	run := e.start(app)
	e.waitFor("the good record", func() (bool, error) { return len(e.readAll("out")) == 1, nil }, run)
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	if got := e2eValues(e.readAll("out")); len(got) != 1 || got[0] != "good" {
		t.Fatalf("output %v, want [good]", got)
	}
	if got := e2eMetric(t, reg, "runnel_records_skipped_total", map[string]string{"reason": "invalid_timestamp"}); got != 1 {
		t.Fatalf("skipped{reason=invalid_timestamp} = %v, want 1", got)
	}
}
