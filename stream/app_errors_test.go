package stream_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/runnel-dev/runnel/internal/kafkatest"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/streamtest"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kgo"
)

func e2eInt64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// e2ePoisonInput writes good Int64 values to partition 0 of topic and to
// partition 1 good values around one 3-byte value at offset badOffset.
func (e *e2eEnv) poisonInput(topic string) (badOffset int64) {
	e.t.Helper()
	var recs []*kgo.Record
	for i := range 5 {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("a"), Value: e2eInt64(int64(i))})
	}
	for i := range 3 {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 1, Key: []byte("b"), Value: e2eInt64(int64(i))})
	}
	bad := &kgo.Record{Topic: topic, Partition: 1, Key: []byte("b"), Value: []byte{1, 2, 3}, Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}
	recs = append(recs, bad)
	for i := range 2 {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 1, Key: []byte("b"), Value: e2eInt64(int64(10 + i))})
	}
	if err := e.c.ProduceToPartitions(e.ctx, recs...); err != nil {
		e.t.Fatal(err)
	}
	return bad.Offset
}

// TestAppDeserializationErrorFails: under the default handler an undecodable
// record stops the app with an error locating it, and its offset is not
// committed.
func TestAppDeserializationErrorFails(t *testing.T) {
	e := newE2E(t, 30*time.Second)
	e.topic("in", 2)
	e.topic("out", 2)
	badOffset := e.poisonInput("in")

	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.Int64, stream.Named("numbers")).To("out", serde.String, serde.Int64)
	cfg, _ := e.config("poison-fail")
	var states e2eStates
	cfg.StateListener = states.listener
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = e.start(app).wait(t, 20*time.Second)
	var de *topology.DeserializationError
	if !errors.As(err, &de) {
		t.Fatalf("Run = %v, want a *topology.DeserializationError", err)
	}
	if de.Topic != "in" || de.Partition != 1 || de.Offset != badOffset || de.Key || de.Node != "numbers" {
		t.Errorf("DeserializationError = %+v, want value of in-1@%d at node numbers", de, badOffset)
	}
	for _, want := range []string{fmt.Sprintf("in-1@%d", badOffset), "numbers", "set Config.DeserializationErrorHandler = stream.LogAndContinue", "Config.DeadLetterQueueTopic"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if !errors.Is(err, serde.ErrSize) {
		t.Errorf("Run = %v, want it to wrap serde.ErrSize", err)
	}
	if app.State() != stream.Error {
		t.Errorf("State() = %v, want ERROR", app.State())
	}
	if got := states.get(); len(got) < 2 || !slices.Equal(got[len(got)-2:], []string{"RUNNING->PENDING_ERROR", "PENDING_ERROR->ERROR"}) {
		t.Errorf("state transitions = %v, want them to end RUNNING->PENDING_ERROR->ERROR", got)
	}
	if off, ok := e.committed("poison-fail", "in")[1]; ok && off > badOffset {
		t.Errorf("committed offset of in-1 = %d, past the failed record at %d", off, badOffset)
	}
}

// TestAppDeserializationErrorDeadLetter: with LogAndContinue and a dead-letter
// topic, good records flow and the undecodable one lands in the DLQ with
// headers describing the failure; the skip is counted.
func TestAppDeserializationErrorDeadLetter(t *testing.T) {
	e := newE2E(t, 30*time.Second)
	e.topic("in", 2)
	e.topic("out", 2)
	e.topic("dlq", 1)
	badOffset := e.poisonInput("in")

	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.Int64, stream.Named("numbers")).To("out", serde.String, serde.Int64)
	cfg, _ := e.config("poison-dlq")
	events := &e2eEvents{}
	cfg.EventListener = events.listener()
	cfg.DeserializationErrorHandler = stream.LogAndContinue
	cfg.DeadLetterQueueTopic = "dlq"
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	run := e.start(app)
	const good = 10
	e.waitFor("all input to be committed", func() (bool, error) {
		offs, err := e.c.CommittedOffsets(e.ctx, "poison-dlq", "in")
		return err == nil && offs[0] == 5 && offs[1] == 6, err
	}, run)
	if err := run.stop(t); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	out := e.readAll("out")
	var vals []int64
	for _, r := range out {
		v, err := serde.Int64.Deserialize("out", r.Value)
		if err != nil {
			t.Fatalf("output value %x: %v", r.Value, err)
		}
		vals = append(vals, v)
	}
	slices.Sort(vals)
	if want := []int64{0, 0, 1, 1, 2, 2, 3, 4, 10, 11}; !slices.Equal(vals, want) || len(vals) != good {
		t.Errorf("output values %v, want %v", vals, want)
	}

	dlq := e.readAll("dlq")
	if len(dlq) != 1 {
		t.Fatalf("DLQ has %d records, want 1", len(dlq))
	}
	d := dlq[0]
	if string(d.Key) != "b" || !slices.Equal(d.Value, []byte{1, 2, 3}) {
		t.Errorf("DLQ record %q=%x, want the raw input b=010203", d.Key, d.Value)
	}
	h := map[string]string{}
	for _, hd := range d.Headers {
		h[hd.Key] = string(hd.Value)
	}
	want := map[string]string{
		"h":                          "v", // the input's own headers are kept
		"__streams.errors.topic":     "in",
		"__streams.errors.partition": "1",
		"__streams.errors.offset":    fmt.Sprint(badOffset),
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("DLQ header %s = %q, want %q (headers %v)", k, h[k], v, h)
		}
	}
	for _, k := range []string{"__streams.errors.exception", "__streams.errors.message"} {
		if h[k] == "" {
			t.Errorf("DLQ header %s missing (headers %v)", k, h)
		}
	}
	if !strings.Contains(h["__streams.errors.message"], fmt.Sprintf("in-1@%d", badOffset)) {
		t.Errorf("DLQ message header %q does not locate the record", h["__streams.errors.message"])
	}
	if got := e2eMetric(t, reg, "runnel_records_skipped_total", map[string]string{"reason": "deserialization"}); got != 1 {
		t.Errorf(`runnel_records_skipped_total{reason="deserialization"} = %v, want 1`, got)
	}
	skipped := snapshot(events, &events.skipped)
	if len(skipped) != 1 {
		t.Fatalf("RecordSkipped events %+v, want 1", skipped)
	}
	if s := skipped[0]; s.Reason != "deserialization" || s.Topic != "in" || s.Partition != 1 || s.Offset != badOffset || !s.Valid ||
		s.Node != "numbers" || s.Task != (topology.TaskID{Subtopology: 0, Partition: 1}) || !errors.As(s.Err, new(*topology.DeserializationError)) {
		t.Errorf("RecordSkipped %+v, want the deserialization failure of in-1@%d at node numbers", s, badOffset)
	}
	if msg := skipped[0].Err.Error(); strings.Contains(msg, "to skip records") {
		t.Errorf("skipped record's error %q tells how to skip records: only a failing one should", msg)
	}
}

// TestAppPanicFails: a panic in user code stops the app with an error
// matching topology.ErrPanic and naming the node.
func TestAppPanicFails(t *testing.T) {
	e := newE2E(t, 30*time.Second)
	e.topic("in", 1)
	e.topic("out", 1)
	e.produce(&kgo.Record{Topic: "in", Key: []byte("k"), Value: []byte("ok")}, &kgo.Record{Topic: "in", Key: []byte("k"), Value: []byte("boom")})

	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.String).
		Peek(func(_, v string) {
			if v == "boom" {
				panic("peek exploded")
			}
		}, stream.Named("exploding-peek")).
		To("out", serde.String, serde.String)
	cfg, _ := e.config("panic-e2e")
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = e.start(app).wait(t, 20*time.Second)
	if !errors.Is(err, topology.ErrPanic) {
		t.Fatalf("Run = %v, want an error matching topology.ErrPanic", err)
	}
	var pe *topology.ProcessingError
	if !errors.As(err, &pe) || pe.Node != "exploding-peek" || pe.Record.Offset != 1 {
		t.Errorf("Run = %v, want a ProcessingError of node exploding-peek at offset 1", err)
	}
	if !strings.Contains(err.Error(), "peek exploded") {
		t.Errorf("error %q does not carry the panic value", err)
	}
	if app.State() != stream.Error {
		t.Errorf("State() = %v, want ERROR", app.State())
	}
	if off, ok := e.committed("panic-e2e", "in")[0]; ok && off > 1 {
		t.Errorf("committed offset %d is past the record that panicked", off)
	}
}

// TestAppStartErrors: topology problems that need the cluster to see are
// reported promptly by Run, naming the topic and node.
func TestAppStartErrors(t *testing.T) {
	e := newE2E(t, 60*time.Second)
	e.topic("in", 2)
	e.topic("out", 2)
	e.topic("three", 3)

	tests := []struct {
		name  string
		build func(b *stream.Builder)
		want  []string
		is    error
	}{{
		name: "missing source",
		build: func(b *stream.Builder) {
			stream.From(b, "no-such-input", serde.String, serde.String, stream.Named("src")).To("out", serde.String, serde.String)
		},
		want: []string{`"no-such-input"`, `"src"`, "source", "does not exist"},
		is:   stream.ErrTopicMissing,
	}, {
		name: "missing sink",
		build: func(b *stream.Builder) {
			stream.From(b, "in", serde.String, serde.String).To("no-such-output", serde.String, serde.String, stream.Named("snk"))
		},
		want: []string{`"no-such-output"`, `"snk"`, "sink", "does not exist"},
		is:   stream.ErrTopicMissing,
	}, {
		name: "not co-partitioned",
		build: func(b *stream.Builder) {
			stream.FromTopics(b, []string{"in", "three"}, serde.String, serde.String).To("out", serde.String, serde.String)
		},
		want: []string{"co-partitioned", "in=2", "three=3"},
		is:   stream.ErrNotCopartitioned,
	}}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &e2eEnv{t: t, ctx: e.ctx, c: e.c}
			b := stream.NewBuilder()
			tt.build(b)
			cfg, _ := e.config(fmt.Sprintf("start-errors-%d", i))
			var states e2eStates
			cfg.StateListener = states.listener
			app, err := stream.NewApp(b, cfg)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = e.start(app).wait(t, 10*time.Second)
			if err == nil {
				t.Fatal("Run = nil, want an error")
			}
			t.Logf("Run returned after %v: %v", time.Since(start), err)
			if !errors.Is(err, tt.is) {
				t.Errorf("Run = %v, want an error matching %v", err, tt.is)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if slices.Contains(states.get(), "REBALANCING->RUNNING") {
				t.Errorf("app was RUNNING despite the start error: %v", states.get())
			}
			if app.State() != stream.Error {
				t.Errorf("State() = %v, want ERROR", app.State())
			}
		})
	}
}

// TestNewAppConfigErrors: NewApp rejects invalid Config fields with errors
// naming each field and matching stream.ErrConfig.
func TestNewAppConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		cfg    stream.Config
		fields []string
	}{
		{"no app id", stream.Config{Brokers: []string{"localhost:9092"}}, []string{"Config.AppID"}},
		{"bad app id", stream.Config{AppID: "my app!", Brokers: []string{"localhost:9092"}}, []string{"Config.AppID"}},
		{"no brokers", stream.Config{AppID: "a"}, []string{"Config.Brokers"}},
		{"broker without port", stream.Config{AppID: "a", Brokers: []string{"localhost"}}, []string{"Config.Brokers"}},
		{"unknown guarantee", stream.Config{AppID: "a", Brokers: []string{"h:1"}, Guarantee: 7}, []string{"Config.Guarantee"}},
		{"negative commit interval", stream.Config{AppID: "a", Brokers: []string{"h:1"}, CommitInterval: -time.Second}, []string{"Config.CommitInterval"}},
		{"negative buffer", stream.Config{AppID: "a", Brokers: []string{"h:1"}, MaxBufferedRecordsPerPartition: -1}, []string{"Config.MaxBufferedRecordsPerPartition"}},
		{"bad instance id", stream.Config{AppID: "a", Brokers: []string{"h:1"}, InstanceID: "host/1"}, []string{"Config.InstanceID"}},
		{"negative transaction timeout", stream.Config{AppID: "a", Brokers: []string{"h:1"}, TransactionTimeout: -time.Second}, []string{"Config.TransactionTimeout"}},
		{"transaction timeout below the commit interval", stream.Config{AppID: "a", Brokers: []string{"h:1"}, Guarantee: stream.ExactlyOnce, CommitInterval: 30 * time.Second}, []string{"Config.TransactionTimeout", "CommitInterval"}},
		{"negative uncommitted bound", stream.Config{AppID: "a", Brokers: []string{"h:1"}, StateStoreUncommittedMaxBytes: -1}, []string{"Config.StateStoreUncommittedMaxBytes"}},
		{"all at once", stream.Config{Brokers: []string{"nohost"}, Guarantee: 9, CommitInterval: -1, MaxBufferedRecordsPerPartition: -5},
			[]string{"Config.AppID", "Config.Brokers", "Config.Guarantee", "Config.CommitInterval", "Config.MaxBufferedRecordsPerPartition"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := stream.NewBuilder()
			stream.From(b, "in", serde.String, serde.String).To("out", serde.String, serde.String)
			app, err := stream.NewApp(b, tt.cfg)
			if err == nil {
				t.Fatalf("NewApp = %v, nil; want an error", app)
			}
			if !errors.Is(err, stream.ErrConfig) {
				t.Errorf("NewApp error %q does not match ErrConfig", err)
			}
			for _, f := range tt.fields {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("NewApp error %q does not name %s", err, f)
				}
			}
		})
	}

	// A valid config passes.
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.String).To("out", serde.String, serde.String)
	if _, err := stream.NewApp(b, stream.Config{AppID: "ok.app_1-x", Brokers: []string{"127.0.0.1:9092"}}); err != nil {
		t.Errorf("NewApp(valid) = %v", err)
	}
}

// TestNewAppEmptyTopology: a topology that reads no topic (nothing added,
// or only a store) is refused by NewApp and NewAppFromTopology, instead of
// an App whose Run would sit in REBALANCING forever.
func TestNewAppEmptyTopology(t *testing.T) {
	cfg := stream.Config{AppID: "a", Brokers: []string{"127.0.0.1:9092"}}
	const want = "topology: invalid topology: it has no source: read a topic with stream.From, stream.FromTopics, stream.FromPattern or stream.Table"
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, topology.ErrNoSource) || !errors.Is(err, topology.ErrInvalid) || err.Error() != want {
			t.Errorf("%s = %v, want %q matching topology.ErrNoSource and topology.ErrInvalid", what, err, want)
		}
	}
	empty := stream.NewBuilder()
	storeOnly := stream.NewBuilder()
	stream.AddKeyValueStore(storeOnly, "s", serde.String, serde.String)
	for name, b := range map[string]*stream.Builder{"empty": empty, "store only": storeOnly} {
		_, err := stream.NewApp(b, cfg)
		check("NewApp("+name+")", err)
		topo, err := b.Build()
		if err != nil {
			t.Fatalf("Build(%s): %v", name, err)
		}
		_, err = stream.NewAppFromTopology(topo, cfg)
		check("NewAppFromTopology("+name+")", err)
	}
}

// TestNewAppFromNoTopology: a nil or zero topology (not made by Build) is
// an error matching topology.ErrInvalid, not a panic, in NewAppFromTopology
// and streamtest.New; a zero Topology describes as empty.
func TestNewAppFromNoTopology(t *testing.T) {
	cfg := stream.Config{AppID: "a", Brokers: []string{"127.0.0.1:9092"}}
	for name, topo := range map[string]*topology.Topology{"nil": nil, "zero": {}} {
		_, err := stream.NewAppFromTopology(topo, cfg)
		if !errors.Is(err, topology.ErrInvalid) || !strings.Contains(err.Error(), "not made by Builder.Build") {
			t.Errorf("NewAppFromTopology(%s) = %v, want an error matching topology.ErrInvalid saying it was not built", name, err)
		}
		_, err = streamtest.New(topo, streamtest.Config{})
		if !errors.Is(err, topology.ErrInvalid) || !strings.Contains(err.Error(), "not made by Builder.Build") {
			t.Errorf("streamtest.New(%s) = %v, want an error matching topology.ErrInvalid saying it was not built", name, err)
		}
		if d := topo.Describe(); d != "" {
			t.Errorf("Describe of a %s topology = %q, want empty", name, d)
		}
	}
}

// TestAppBrokersUnreachable: with no cluster listening, Run keeps retrying
// and warning with the address instead of failing, never reaches RUNNING,
// and returns nil soon after its context is cancelled.
func TestAppBrokersUnreachable(t *testing.T) {
	c, err := kafkatest.Start()
	if err != nil {
		t.Fatal(err)
	}
	addr := c.Brokers()[0]
	c.Close() // nothing listens on addr any more

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	e := &e2eEnv{t: t, ctx: ctx}
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.String).To("out", serde.String, serde.String)
	logs := &e2eLog{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.tail(100))
		}
	})
	var states e2eStates
	app, err := stream.NewApp(b, stream.Config{
		AppID: "unreachable", Brokers: []string{addr}, StateDir: t.TempDir(),
		ClientOpts:    e2eGroupOpts(),
		Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		StateListener: states.listener,
	})
	if err != nil {
		t.Fatal(err)
	}
	run := e.start(app)
	err = kafkatest.WaitFor(ctx, func() (bool, error) {
		if exited, err := run.exitedEarly(); exited {
			return false, fmt.Errorf("Run returned %v while brokers were unreachable", err)
		}
		// Runnel's own warning, not only franz-go's (prefixed "kafka client:").
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, addr) && !strings.Contains(line, "kafka client:") {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("waiting for a warning naming %s: %v", addr, err)
	}
	if s := app.State(); s == stream.Running {
		t.Errorf("State() = RUNNING with no cluster")
	}
	start := time.Now()
	if err := run.stop(t); err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v to return after cancel", d)
	}
	if got := states.get(); slices.Contains(got, "REBALANCING->RUNNING") {
		t.Errorf("state transitions %v include RUNNING", got)
	}
	if app.State() != stream.NotRunning {
		t.Errorf("State() after Run = %v, want NOT_RUNNING", app.State())
	}
}
