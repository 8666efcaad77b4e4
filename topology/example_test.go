package topology_test

import (
	"fmt"
	"time"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/streamtest"
	"github.com/runnel-dev/runnel/topology"
)

// idleDevices is a Processor that remembers in a key-value store when each
// device was last heard from, and every minute of wall-clock time reports
// (and forgets) the devices silent for a minute or more.
type idleDevices struct {
	ctx      topology.ProcessorContext[string, string]
	lastSeen state.KeyValueStore[string, int64]
}

// Init gets the store and schedules the wall-clock punctuator.
func (p *idleDevices) Init(ctx topology.ProcessorContext[string, string]) error {
	p.ctx = ctx
	st, err := ctx.Store("last-seen")
	if err != nil {
		return err
	}
	if p.lastSeen, err = state.KeyValue[string, int64](st); err != nil {
		return err
	}
	_, err = ctx.Schedule(time.Minute, topology.WallClockTime, p.reportIdle)
	return err
}

// Process records when the record's device was seen.
func (p *idleDevices) Process(rec topology.Record[string, string]) error {
	return p.lastSeen.Put(rec.Key, p.ctx.WallClockTime().UnixMilli())
}

// reportIdle forwards an "idle" record for every device not seen for a
// minute at wall-clock time now (in milliseconds).
func (p *idleDevices) reportIdle(now int64) error {
	var idle []string
	for device, seen := range p.lastSeen.All() {
		if now-seen >= time.Minute.Milliseconds() {
			idle = append(idle, device)
		}
	}
	if err := p.lastSeen.Err(); err != nil {
		return err // the scan stopped early
	}
	for _, device := range idle {
		if _, _, err := p.lastSeen.Delete(device); err != nil {
			return err
		}
		if err := p.ctx.Forward(topology.Record[string, string]{Key: device, Value: "idle", Timestamp: now}); err != nil {
			return err
		}
	}
	return nil
}

// Close has nothing to release: the task closes the store.
func (p *idleDevices) Close() error { return nil }

// ExampleProcessor plugs a Processor with a key-value store and a wall-clock
// punctuator into a stream, and drives its clock with the test driver.
func ExampleProcessor() {
	b := stream.NewBuilder()
	stream.AddKeyValueStore(b, "last-seen", serde.String, serde.Int64)
	heartbeats := stream.From(b, "heartbeats", serde.String, serde.String)
	stream.Process(heartbeats, func() topology.Processor[string, string, string, string] {
		return &idleDevices{} // a new instance for every task
	}, stream.WithStores("last-seen"), stream.Named("idle-devices")).
		To("device-status", serde.String, serde.String)
	topo, err := b.Build()
	if err != nil {
		panic(err)
	}

	d, err := streamtest.New(topo, streamtest.Config{}) // the wall clock starts at 0
	if err != nil {
		panic(err)
	}
	defer d.Close()
	in := streamtest.InputTopic(d, "heartbeats", serde.String, serde.String)
	_ = in.Pipe("sensor-1", "ok")
	_ = in.Pipe("sensor-2", "ok")
	_ = d.AdvanceWallClock(30 * time.Second)
	_ = in.Pipe("sensor-2", "ok")
	_ = d.AdvanceWallClock(90 * time.Second) // punctuates at 1m and 2m
	status, _ := streamtest.OutputTopic(d, "device-status", serde.String, serde.String).ReadAll()
	for _, r := range status {
		fmt.Println(r.Timestamp, r.Key, r.Value)
	}
	// Output:
	// 60000 sensor-1 idle
	// 120000 sensor-2 idle
}
