package stream_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestAppMixedOffsetResets: each source starts where its own reset policy
// says, although franz-go has one policy per client.
func TestAppMixedOffsetResets(t *testing.T) {
	e := newE2E(t, 30*time.Second)
	e.topic("early", 1)
	e.topic("late", 1)
	e.topic("out", 1)
	e.produce(&kgo.Record{Topic: "early", Value: []byte("early-before")}, &kgo.Record{Topic: "late", Value: []byte("late-before")})

	b := stream.NewBuilder()
	early := stream.From(b, "early", serde.String, serde.String, stream.WithOffsetReset(topology.Earliest))
	late := stream.From(b, "late", serde.String, serde.String, stream.WithOffsetReset(topology.Latest))
	early.Merge(late).To("out", serde.String, serde.String)
	cfg, _ := e.config("mixed-resets")
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	run := e.start(app)
	e.waitFor("the earliest source to process its old record", func() (bool, error) {
		return len(e.readAll("out")) == 1, nil
	}, run)
	// When the latest source's start position is resolved is up to the
	// client, so keep producing until a new record comes through.
	e.waitFor("a record produced after start on the latest source", func() (bool, error) {
		e.produce(&kgo.Record{Topic: "late", Value: []byte("late-after")})
		return slices.Contains(e2eValues(e.readAll("out")), "late-after"), nil
	}, run)
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	got := e2eValues(e.readAll("out"))
	if !slices.Contains(got, "early-before") || slices.Contains(got, "late-before") {
		t.Fatalf("output %v: want early-before (earliest reset) and not late-before (latest reset)", got)
	}
}

// TestAppStreamTimePunctuatorError: an error from a stream-time punctuator
// fails the application under the default handler, and a punctuator
// scheduled in Init fires with the first record even at a real-world
// timestamp (aligned to 0, as in Kafka Streams).
func TestAppStreamTimePunctuatorError(t *testing.T) {
	e := newE2E(t, 30*time.Second)
	e.topic("in", 1)
	e.topic("out", 1)
	now := time.Now()
	e.produce(
		&kgo.Record{Topic: "in", Value: []byte("a"), Timestamp: now},
		&kgo.Record{Topic: "in", Value: []byte("b"), Timestamp: now.Add(time.Millisecond)},
	)
	boom := errors.New("punctuator failed")
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	stream.Process(src, func() topology.Processor[string, string, string, string] {
		var fired int
		return &topology.ProcessorFuncs[string, string, string, string]{
			OnInit: func(ctx topology.ProcessorContext[string, string]) error {
				_, err := ctx.Schedule(time.Millisecond, topology.StreamTime, func(int64) error {
					if fired++; fired == 2 {
						return boom
					}
					return nil
				})
				return err
			},
			OnProcess: func(ctx topology.ProcessorContext[string, string], rec topology.Record[string, string]) error {
				return ctx.Forward(rec)
			},
		}
	}, stream.Named("punctuating")).To("out", serde.String, serde.String)
	cfg, _ := e.config("punctuator-error")
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = e.start(app).wait(t, 20*time.Second)
	var pe *topology.ProcessingError
	if !errors.Is(err, boom) || !errors.As(err, &pe) || pe.Node != "punctuating" || pe.Valid {
		t.Fatalf("Run = %v, want the punctuator's error as a ProcessingError of node punctuating outside a record", err)
	}
	if app.State() != stream.Error {
		t.Errorf("State() = %v, want ERROR", app.State())
	}
	if off, ok := e.committed("punctuator-error", "in")[0]; ok && off > 1 {
		t.Errorf("committed offset %d: the record whose punctuation failed was committed", off)
	}
}
