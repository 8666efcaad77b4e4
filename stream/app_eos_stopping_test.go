package stream_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAppEOSFailedEndWhileStopping: a wall-clock punctuator (no input
// processed) writes a logged store and emits a record; End fails (EndTxn
// refused) while the app's ctx is cancelled. The failed transaction must
// not count as committed: the store write must not be applied locally
// (a regression: the shutdown commit once skipped the dead transaction as
// empty and applied the task's batch and checkpoint, so the restarted
// instance held a write whose transaction never committed and the emitted
// record was lost).
func TestAppEOSFailedEndWhileStopping(t *testing.T) {
	skipShort(t)
	e := newE2E(t, 2*time.Minute)
	e.topic("in", 1)
	e.topic("out", 1)
	var armed atomic.Bool
	var ticks atomic.Int64 // punctuations so far
	seen := make(chan string, 4)
	newApp := func(cfg stream.Config) *stream.App {
		b := stream.NewBuilder()
		stream.AddKeyValueStore(b, "s", serde.String, serde.String)
		src := stream.From(b, "in", serde.String, serde.String)
		stream.Process(src, func() topology.Processor[string, string, string, string] {
			var kv state.KeyValueStore[string, string]
			return &topology.ProcessorFuncs[string, string, string, string]{
				OnInit: func(ctx topology.ProcessorContext[string, string]) error {
					st, err := ctx.Store("s")
					if err != nil {
						return err
					}
					if kv, err = state.KeyValue[string, string](st); err != nil {
						return err
					}
					v, _, _ := kv.Get("a")
					seen <- v
					_, err = ctx.Schedule(20*time.Millisecond, topology.WallClockTime, func(int64) error {
						ticks.Add(1)
						if !armed.CompareAndSwap(true, false) {
							return nil
						}
						if v, _, _ := kv.Get("a"); v != "pending" {
							return nil
						}
						if err := kv.Put("a", "emitted"); err != nil {
							return err
						}
						return ctx.Forward(topology.Record[string, string]{Key: "a", Value: "emitted"})
					})
					return err
				},
				OnProcess: func(ctx topology.ProcessorContext[string, string], rec topology.Record[string, string]) error {
					return kv.Put(rec.Key, "pending")
				},
			}
		}, stream.WithStores("s")).To("out", serde.String, serde.String)
		app, err := stream.NewApp(b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return app
	}
	cfg, _ := e.config("skip")
	cfg.Guarantee = stream.ExactlyOnce
	run := e.start(newApp(cfg))
	<-seen
	e.produce(&kgo.Record{Topic: "in", Key: []byte("a"), Value: []byte("x")})
	e.waitFor("the record committed", func() (bool, error) { return e.committed("skip", "in")[0] == 1, nil }, run)
	// Wait for the commit to have applied the record's state: punctuation
	// runs between records, which the commit holds off until it has
	// written the task's state, so a punctuation that starts after the
	// offset became visible comes after that write.
	seenTicks := ticks.Load()
	e.waitFor("a punctuation after the commit", func() (bool, error) { return ticks.Load() > seenTicks, nil }, run)

	var refuse atomic.Bool
	refuse.Store(true)
	e.c.Kfake().ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.c.Kfake().KeepControl()
		if r := req.(*kmsg.EndTxnRequest); !r.Commit || !refuse.CompareAndSwap(true, false) {
			return nil, nil, false
		}
		run.cancel() // the user stops the app while the commit fails
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.ProducerFenced.Code
		return resp, nil, true
	})
	armed.Store(true)
	err := run.wait(t, 60*time.Second)
	t.Logf("first run returned %v", err)

	run2 := e.start(newApp(cfg))
	var got string
	select {
	case got = <-seen:
	case <-time.After(40 * time.Second):
		t.Fatal("the second run did not initialize")
	}
	out := e.readAll("out") // read_committed
	t.Logf("restarted instance sees a=%q; committed output records: %d", got, len(out))
	if got == "emitted" && len(out) == 0 {
		t.Errorf("local state says a was emitted but no committed output has it: the failed transaction's state was applied")
	}
	run2.stop(t)
}
