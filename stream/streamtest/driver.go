package streamtest

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/internal/runtime"
	"github.com/runnel-dev/runnel/internal/storage"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/stream/event"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	// ErrNoRecord is wrapped by the error Output.ReadRecord and
	// Output.ReadKeyValue return when the topic has no unread record.
	ErrNoRecord = errors.New("streamtest: no record")
	// ErrClosed is wrapped by the errors of Pipe and AdvanceWallClock after
	// Driver.Close.
	ErrClosed = errors.New("streamtest: driver closed")
)

// Config configures a Driver. The zero value is ready to use; every field's
// doc gives its default.
type Config struct {
	// AppID is the application id: internal topics are named
	// "<AppID>-<name>", e.g. "streamtest-counts-repartition". Default
	// "streamtest".
	AppID string
	// StartTime is the initial wall-clock time and the initial record time
	// of every Input. Default: time.UnixMilli(0).
	StartTime time.Time
	// Logger receives the tasks' logs. Default: logs are discarded.
	Logger *slog.Logger
	// DeserializationErrorHandler decides what happens to an input record
	// whose key or value cannot be decoded. Default (nil): fail, as
	// stream.LogAndFail — Pipe returns the *topology.DeserializationError.
	DeserializationErrorHandler topology.ErrorHandler
	// ProcessingErrorHandler decides what happens to a record whose
	// processing returned an error or panicked, and to failed punctuations.
	// Default (nil): fail, as stream.LogAndFail — Pipe (or
	// AdvanceWallClock) returns the *topology.ProcessingError.
	ProcessingErrorHandler topology.ErrorHandler
	// DeadLetterQueueTopic, when set, receives the raw input record of
	// every record a handler skipped (Continue), with headers describing
	// the error ("__streams.errors.exception", "__streams.errors.message",
	// "__streams.errors.topic", "__streams.errors.partition",
	// "__streams.errors.offset"). Read it with OutputTopic. Default: none.
	DeadLetterQueueTopic string
	// CacheMaxBytes is each task's record cache budget, as
	// stream.Config.CacheMaxBytes: 0 means 10 MiB, a negative value
	// disables caching. The driver flushes the caches after every Pipe
	// and AdvanceWallClock (as Kafka Streams' TopologyTestDriver commits
	// after each input), so a cached aggregation emits one update per key
	// and call.
	CacheMaxBytes int64
}

// Driver runs a topology synchronously: one task per subtopology, every topic
// with one partition, a controllable wall clock and captured output.
//
// A Driver, and the Inputs and Outputs made from it, are not safe for
// concurrent use: use them from one goroutine (or synchronize). The caller
// must call Close, which closes the processors.
//
// When an error handler says to fail, a running application stops; the
// Driver instead returns the error from the call that processed the record
// (Pipe or AdvanceWallClock) and drops the failing record, so a test can
// check the error and go on piping. Records still queued behind it (e.g.
// other records of a repartition topic) are processed by the next call. As
// the task sees the failure as a skip, it logs the record as skipped, and
// stream-time punctuators the record made due still fire.
type Driver struct {
	cfg    Config
	topo   *graph.Graph
	tasks  []*runtime.Task
	now    time.Time
	closed bool
	// db holds the stores, in memory (nil for stateless topologies).
	db *storage.DB

	// offsets holds the next offset of every topic (full name).
	offsets map[string]int64
	// out holds the unread records produced to each topic (full name).
	out map[string][]*kgo.Record
	// pending holds produced records waiting to be added to the tasks that
	// read their topics.
	pending []delivery

	// skipped counts skipped records by reason.
	skipped map[string]int

	// failed is the first error a handler said to fail on during the
	// current call; dropDeadLetter suppresses the dead-letter record the
	// task writes for that record and uncounted the skip it reports right
	// after the handler (see handler).
	failed         error
	dropDeadLetter bool
	uncounted      bool
}

type delivery struct {
	task int
	rec  *kgo.Record
}

// New returns a Driver running t. It builds and initializes every task
// (processors' Init runs here) and returns an error if one fails. A
// topology without a source is topology.ErrNoSource.
func New(topo *topology.Topology, cfg Config) (*Driver, error) {
	t := graph.Of(topo)
	if t == nil {
		return nil, fmt.Errorf("streamtest: %w: the topology is nil or was not made by Builder.Build", topology.ErrInvalid)
	}
	if len(t.Subtopologies()) == 0 {
		return nil, topology.ErrNoSource
	}
	if cfg.AppID == "" {
		cfg.AppID = "streamtest"
	}
	if cfg.StartTime.IsZero() {
		cfg.StartTime = time.UnixMilli(0)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Driver{
		cfg:     cfg,
		topo:    t,
		now:     cfg.StartTime,
		offsets: map[string]int64{},
		skipped: map[string]int{},
		out:     map[string][]*kgo.Record{},
	}
	if len(t.Stores()) > 0 {
		db, err := storage.Open("streamtest", storage.Options{FS: vfs.NewMem(), Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("streamtest: %w", err)
		}
		d.db = db
	}
	cacheBytes := runtime.CacheBytes(cfg.CacheMaxBytes)
	p := producer{d}
	for _, sub := range t.Subtopologies() {
		task, err := runtime.NewTask(runtime.TaskConfig{
			AppID:                  cfg.AppID,
			ID:                     topology.TaskID{Subtopology: sub.ID, Partition: 0},
			Topology:               t,
			Producer:               p,
			Clock:                  d.WallClock,
			Logger:                 cfg.Logger,
			OnDeserializationError: d.handler(cfg.DeserializationErrorHandler),
			OnProcessingError:      d.handler(cfg.ProcessingErrorHandler),
			DeadLetterTopic:        cfg.DeadLetterQueueTopic,
			State:                  d.db,
			Events:                 event.Listener{RecordSkipped: func(info event.SkipInfo) { d.recordSkipped(info.Reason) }},
			CacheMaxBytes:          cacheBytes,
		})
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("streamtest: %w", err)
		}
		d.tasks = append(d.tasks, task)
		// Stores start empty: nothing to restore before Init.
		if err := task.Init(); err != nil {
			d.Close()
			return nil, fmt.Errorf("streamtest: %w", err)
		}
	}
	// Processors may have produced records or scheduled work in Init.
	if err := d.runAndCommit(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// handler wraps a user error handler. A task keeps a record it failed on at
// the head of its queue, for the runtime to retry after a restart; the driver
// wants to report the error and move on. So a Fail decision is recorded and
// turned into Continue, and the skip the task then reports and the
// dead-letter record it writes are dropped, because a failed record is not a
// skipped one.
func (d *Driver) handler(user topology.ErrorHandler) topology.ErrorHandler {
	return func(ectx topology.ErrorContext, err error) topology.HandlerResponse {
		if user != nil && user(ectx, err) == topology.Continue {
			return topology.Continue
		}
		if d.failed == nil {
			d.failed = err
		}
		d.dropDeadLetter = ectx.Valid
		d.uncounted = true
		return topology.Continue
	}
}

// recordSkipped counts a record a task skipped, unless it is the one whose
// failure handler turned into a skip.
func (d *Driver) recordSkipped(reason string) {
	if d.uncounted {
		d.uncounted = false
		return
	}
	d.skipped[reason]++
}

// WallClock returns the driver's wall-clock time, which processors see as
// ProcessorContext.WallClockTime. It starts at Config.StartTime and moves
// only with AdvanceWallClock.
func (d *Driver) WallClock() time.Time { return d.now }

// AdvanceWallClock moves the wall clock forward by dur and fires the
// wall-clock punctuators of every task that become due on the way, in time
// order: a punctuator with a 10 s interval fires 6 times when the clock
// moves by a minute, each time with the time it was due (Kafka Streams'
// TopologyTestDriver fires it once). Records the punctuators forward are
// processed before it returns. It returns the first error a handler said to
// fail on; the clock then stays at the time of the failing punctuation.
func (d *Driver) AdvanceWallClock(dur time.Duration) error {
	if d.closed {
		return ErrClosed
	}
	if dur < 0 {
		return fmt.Errorf("streamtest: cannot move the wall clock back by %v", dur)
	}
	target := d.now.Add(dur)
	for {
		at, ok := d.nextWallClockPunctuation()
		if !ok || at.After(target) {
			d.now = target
			return d.runAndCommit()
		}
		if at.After(d.now) {
			d.now = at
		}
		for _, t := range d.tasks {
			if err := t.PunctuateWallClock(d.now); err != nil {
				return err
			}
			if err := d.takeFailure(); err != nil {
				return err
			}
		}
		if err := d.run(); err != nil {
			return err
		}
	}
}

func (d *Driver) nextWallClockPunctuation() (time.Time, bool) {
	var next time.Time
	found := false
	for _, t := range d.tasks {
		if at, ok := t.NextWallClockPunctuation(); ok && (!found || at.Before(next)) {
			next, found = at, true
		}
	}
	return next, found
}

// Close closes every task, which closes the processors, and returns the
// first error. Records produced before Close can still be read from
// Outputs. Close is idempotent.
func (d *Driver) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	for _, t := range d.tasks {
		errs = append(errs, t.Close())
	}
	if d.db != nil {
		errs = append(errs, d.db.Close())
	}
	return errors.Join(errs...)
}

// pipe appends an input record to topic and processes it and everything
// downstream.
func (d *Driver) pipe(topic string, key, value []byte, headers []topology.Header, ts int64) error {
	if d.closed {
		return ErrClosed
	}
	readers := d.readersOf(topic)
	if len(readers) == 0 {
		return fmt.Errorf("streamtest: no source of the topology reads topic %q", topic)
	}
	rec := d.record(topic, key, value, headers, ts)
	for _, i := range readers {
		d.tasks[i].Add([]*kgo.Record{rec})
	}
	return d.runAndCommit()
}

// runAndCommit processes everything queued, then commits as the runtime
// does: it flushes the record caches (processing what the flushed changes
// cause, until the caches stay clean) and commits the tasks' state.
func (d *Driver) runAndCommit() error {
	if err := d.run(); err != nil {
		return err
	}
	for {
		for _, t := range d.tasks {
			if err := t.FlushCache(); err != nil {
				return err
			}
			if err := d.takeFailure(); err != nil {
				return err
			}
		}
		if len(d.pending) == 0 {
			break
		}
		if err := d.run(); err != nil {
			return err
		}
	}
	for _, t := range d.tasks {
		if err := t.CommitState(); err != nil {
			return err
		}
	}
	return nil
}

// SkippedRecords returns how many records the tasks skipped for reason:
// "deserialization" or "processing" (a handler said continue),
// "invalid_timestamp", "null_key" or "null_value" — what a running
// application counts in runnel_records_skipped_total{reason}. Records
// whose failure Pipe returned are not counted.
func (d *Driver) SkippedRecords(reason string) int { return d.skipped[reason] }

// KeyValueStore returns the named key-value store of the topology (Kafka
// Streams' TopologyTestDriver.getKeyValueStore), to inspect or seed state
// in tests. Writes through it are not changelogged downstream until the
// next Pipe commits them. It fails for an unknown store or other types.
func KeyValueStore[K, V any](d *Driver, name string) (state.KeyValueStore[K, V], error) {
	spec := d.topo.Store(name)
	if spec == nil {
		return nil, fmt.Errorf("streamtest: no store %q in the topology", name)
	}
	for _, sub := range d.topo.Subtopologies() {
		if slices.Contains(sub.Stores, spec) {
			st, err := d.tasks[sub.ID].Store(name)
			if err != nil {
				return nil, err
			}
			return state.KeyValue[K, V](st)
		}
	}
	return nil, fmt.Errorf("streamtest: store %q is used by no processor", name)
}

// record returns a record of topic at its next offset, with its own copies
// of key, value and headers.
func (d *Driver) record(topic string, key, value []byte, headers []topology.Header, ts int64) *kgo.Record {
	off := d.offsets[topic]
	d.offsets[topic] = off + 1
	return &kgo.Record{
		Topic: topic, Partition: 0, Offset: off,
		Key: clone(key), Value: clone(value), Headers: slices.Clip(slices.Clone(headers)),
		Timestamp: time.UnixMilli(ts),
	}
}

// clone copies b, keeping nil (Kafka's null) nil.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return slices.Clone(b)
}

// readersOf returns the indexes of the tasks whose sources read topic (at
// most one: a topic is read by one source).
func (d *Driver) readersOf(topic string) []int {
	if n := d.topo.SourceFor(d.cfg.AppID, topic); n != nil {
		return []int{d.topo.SubtopologyOf(n.Name)}
	}
	return nil
}

// run processes the queued records of every task, feeding produced records
// back to the tasks that read their topics, until nothing is left or a
// handler says to fail.
func (d *Driver) run() error {
	for {
		d.deliver()
		progressed := false
		for _, t := range d.tasks {
			for {
				ok, err := t.ProcessNext()
				if err != nil {
					return err
				}
				if err := d.takeFailure(); err != nil {
					return err
				}
				if !ok {
					break
				}
				progressed = true
				d.deliver()
			}
		}
		if !progressed && len(d.pending) == 0 {
			return nil
		}
	}
}

// takeFailure returns and clears the error a handler failed on.
func (d *Driver) takeFailure() error {
	err := d.failed
	d.failed, d.dropDeadLetter, d.uncounted = nil, false, false
	return err
}

// deliver adds the pending produced records to the tasks that read them.
func (d *Driver) deliver() {
	for _, p := range d.pending {
		d.tasks[p.task].Add([]*kgo.Record{p.rec})
	}
	clear(d.pending)
	d.pending = d.pending[:0]
}

// producer is the tasks' runtime.Producer: it captures records per topic
// and queues those of topics the topology reads for processing.
type producer struct{ d *Driver }

var _ runtime.Producer = producer{}

// Send implements runtime.Producer.
func (p producer) Send(out graph.OutRecord) error {
	d := p.d
	if out.Topic == "" {
		return errors.New("streamtest: record has no topic")
	}
	if out.Partition != -1 && out.Partition != 0 {
		return fmt.Errorf("streamtest: partition %d of topic %q does not exist: every topic has one partition", out.Partition, out.Topic)
	}
	if d.dropDeadLetter && out.Topic == d.cfg.DeadLetterQueueTopic {
		d.dropDeadLetter = false
		return nil
	}
	rec := d.record(out.Topic, out.Key, out.Value, out.Headers, out.Timestamp)
	d.out[out.Topic] = append(d.out[out.Topic], rec)
	for _, i := range d.readersOf(out.Topic) {
		d.pending = append(d.pending, delivery{task: i, rec: rec})
	}
	return nil
}

// PartitionCount implements runtime.Producer: every topic has one partition.
func (producer) PartitionCount(string) (int32, error) { return 1, nil }

// LastOffset implements runtime.Producer: records are acknowledged as
// they are sent.
func (p producer) LastOffset(topic string, partition int32) (int64, bool) {
	next := p.d.offsets[topic]
	return next - 1, partition == 0 && next > 0
}
