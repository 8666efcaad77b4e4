package runtime

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/internal/storage"
	"github.com/runnel-dev/runnel/stream/event"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Producer is where a task's sinks write: the Kafka producer in the
// runtime, captured output in streamtest.
type Producer interface {
	// Send produces a record; errors from delivery are reported elsewhere.
	Send(rec graph.OutRecord) error
	// PartitionCount returns a topic's partition count.
	PartitionCount(topic string) (int32, error)
	// LastOffset returns the offset of the last acknowledged record sent
	// to a changelog partition; ok is false when there is none.
	LastOffset(topic string, partition int32) (offset int64, ok bool)
}

// TaskConfig is what a task needs besides its subtopology.
type TaskConfig struct {
	AppID    string
	ID       topology.TaskID
	Topology *graph.Graph
	Producer Producer
	// Clock returns the wall-clock time (time.Now when nil).
	Clock  func() time.Time
	Logger *slog.Logger
	// OnDeserializationError and OnProcessingError decide what happens to a
	// failing record; nil means fail.
	OnDeserializationError topology.ErrorHandler
	OnProcessingError      topology.ErrorHandler
	// DeadLetterTopic, when set, receives every record a handler skipped.
	DeadLetterTopic string
	// Events receives the task's events: skipped records and
	// restoration. Nil functions are no-ops.
	Events event.Listener
	// OnCommitRequest is called when a processor asks for a commit, and
	// when the uncommitted state grows past MaxUncommittedStateBytes.
	OnCommitRequest func()
	// MaxUncommittedStateBytes bounds the task's uncommitted state batch:
	// past it the task asks for an early commit (0: DefaultMaxUncommittedStateBytes).
	MaxUncommittedStateBytes int64
	// State holds the task's persistent stores; required when the
	// subtopology has stores.
	State *storage.DB
	// CacheMaxBytes is the task's record cache budget (0: no caching).
	CacheMaxBytes int64
}

// Task runs one subtopology for one partition number: it owns an instance of
// every node, a queue per input partition and the task's stream time. A Task
// is not safe for concurrent use: one goroutine owns it.
type Task struct {
	cfg       TaskConfig
	log       *slog.Logger
	sources   map[string]graph.Source // by node name
	byTopic   map[string]graph.Source // cache of source by full topic name
	lifecycle []namedLifecycle        // in topological order
	// initialized counts the lifecycle nodes whose Init succeeded; only
	// they are closed, as Kafka Streams never closes a processor it did
	// not initialize.
	initialized int
	queues      []*partitionQueue
	streamTime  int64
	current     topology.RecordMetadata
	input       *kgo.Record // the record being processed, when inRecord
	inRecord    bool
	puncts      []*punctuation
	closed      bool
	// recordTime is the timestamp of the record being processed, or the
	// time of the punctuation running: changelog records and cached
	// writes get it.
	recordTime int64

	state     *storage.TaskState
	cache     *storage.Cache
	stores    map[string]*taskStore
	storeList []*taskStore
	// commitAsked is set once the pending state asked for a commit, until
	// the next commit.
	commitAsked bool
}

// partitionQueue buffers the fetched, not yet processed records of one input
// partition and remembers the next offset to commit.
type partitionQueue struct {
	topic     string
	partition int32
	recs      []*kgo.Record
	head      int
	// next is the offset after the last processed record (-1: none yet),
	// epoch its leader epoch.
	next  int64
	epoch int32
}

// namedLifecycle is a node instance with Init and Close.
type namedLifecycle struct {
	node string
	lc   graph.Lifecycle
}

// NewTask builds the node instances of the task's subtopology and opens
// its stores. The caller then restores the stores (Restore) and calls
// Init, in that order, before the task processes records; Close releases
// the task whatever step failed.
func NewTask(cfg TaskConfig) (*Task, error) {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxUncommittedStateBytes <= 0 {
		cfg.MaxUncommittedStateBytes = DefaultMaxUncommittedStateBytes
	}
	cfg.Events.EnsureDefaults()
	t := &Task{
		cfg:        cfg,
		log:        cfg.Logger.With("task", cfg.ID.String()),
		sources:    map[string]graph.Source{},
		byTopic:    map[string]graph.Source{},
		streamTime: -1,
	}
	sub := cfg.Topology.Subtopologies()[cfg.ID.Subtopology]
	err := t.openStores(sub)
	if err == nil {
		err = t.build(sub)
	}
	if err != nil {
		t.closeState()
		return nil, err
	}
	return t, nil
}

// build makes the node instances of the subtopology, children first.
func (t *Task) build(sub *graph.Subtopology) error {
	instances := make(map[string]any, len(sub.Nodes))
	for i := len(sub.Nodes) - 1; i >= 0; i-- { // children before parents
		n := sub.Nodes[i]
		names := t.cfg.Topology.Children(n.Name)
		children := make([]graph.Child, len(names))
		for j, c := range names {
			children[j] = graph.Child{Name: c, Instance: instances[c]}
		}
		inst, err := n.Make(t, children)
		if err != nil {
			return fmt.Errorf("task %s: building node %q: %w", t.cfg.ID, n.Name, err)
		}
		instances[n.Name] = inst
		if n.Kind == graph.SourceKind {
			src, ok := inst.(graph.Source)
			if !ok {
				return fmt.Errorf("task %s: source node %q does not implement graph.Source", t.cfg.ID, n.Name)
			}
			t.sources[n.Name] = src
		}
	}
	for _, n := range sub.Nodes {
		if lc, ok := instances[n.Name].(graph.Lifecycle); ok {
			t.lifecycle = append(t.lifecycle, namedLifecycle{n.Name, lc})
		}
	}
	return nil
}

// Init initializes the node instances in topological order. It runs after
// Restore, as in Kafka Streams, so processors see restored stores in Init.
func (t *Task) Init() error {
	for _, l := range t.lifecycle[t.initialized:] {
		if err := l.lc.Init(); err != nil {
			return fmt.Errorf("task %s: initializing node %q: %w", t.cfg.ID, l.node, err)
		}
		t.initialized++
	}
	return nil
}

// ID returns the task id.
func (t *Task) ID() topology.TaskID { return t.cfg.ID }

// Add appends fetched records of one partition to its queue.
func (t *Task) Add(recs []*kgo.Record) {
	if len(recs) == 0 {
		return
	}
	q := t.queue(recs[0].Topic, recs[0].Partition)
	if q.head == len(q.recs) {
		q.recs, q.head = q.recs[:0], 0
	}
	q.recs = append(q.recs, recs...)
}

func (t *Task) queue(topic string, partition int32) *partitionQueue {
	for _, q := range t.queues {
		if q.topic == topic && q.partition == partition {
			return q
		}
	}
	q := &partitionQueue{topic: topic, partition: partition, next: -1}
	t.queues = append(t.queues, q)
	return q
}

// next returns the queue whose head record has the smallest timestamp (ties:
// the first queue), or nil when all are empty.
func (t *Task) next() *partitionQueue {
	var best *partitionQueue
	for _, q := range t.queues {
		if q.head < len(q.recs) && (best == nil || q.recs[q.head].Timestamp.Before(best.recs[best.head].Timestamp)) {
			best = q
		}
	}
	return best
}

// ProcessNext processes the next buffered record, if any, and fires the
// stream-time punctuators it makes due. It reports whether a record was
// processed. An error is returned only when the configured handler says to
// fail: with false the record failed and stays unconsumed; with true the
// record was processed and a punctuator it made due failed.
func (t *Task) ProcessNext() (bool, error) {
	q := t.next()
	if q == nil {
		return false, nil
	}
	rec := q.recs[q.head]
	if err := t.process(rec); err != nil {
		return false, err
	}
	if t.state != nil {
		if err := t.storeErr(); err != nil {
			return false, err
		}
		if !t.commitAsked && int64(t.state.PendingBytes()) > t.cfg.MaxUncommittedStateBytes {
			t.commitAsked = true
			t.RequestCommit()
		}
	}
	q.recs[q.head] = nil
	q.head++
	q.next, q.epoch = rec.Offset+1, rec.LeaderEpoch
	return true, t.punctuate(topology.StreamTime, t.streamTime)
}

func (t *Task) process(rec *kgo.Record) error {
	src := t.source(rec.Topic)
	if src == nil {
		return fmt.Errorf("task %s: no source reads topic %q", t.cfg.ID, rec.Topic)
	}
	t.current = topology.RecordMetadata{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}
	t.input = rec
	defer func() { t.input = nil }() // not kept past the record (it holds its fetched batch)
	t.inRecord = true
	err := callSource(src, rec)
	t.inRecord = false
	if err == nil {
		return nil
	}
	if errors.As(err, new(*handledError)) {
		return err // the handler already said to fail
	}
	if serr := t.stateFailed(); serr != nil {
		return serr
	}
	handler, reason := t.cfg.OnProcessingError, "processing"
	var node string
	var de *topology.DeserializationError
	if errors.As(err, &de) {
		handler, reason, node = t.cfg.OnDeserializationError, "deserialization", de.Node
	} else {
		err = t.processingError(err, true)
		node = err.(*topology.ProcessingError).Node
	}
	ectx := errorContext(t.cfg.ID, node, t.current, true, 0, rec)
	if handler == nil || handler(ectx, err) != topology.Continue {
		if de != nil {
			// Only where the record fails the task: a skipped record's
			// log line would contradict it.
			return fmt.Errorf("%w (to skip records that cannot be deserialized, set Config.DeserializationErrorHandler = stream.LogAndContinue; "+
				"set Config.DeadLetterQueueTopic to keep a copy of each skipped record)", err)
		}
		return err
	}
	t.log.Warn("skipping record", "reason", reason, "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", err)
	t.skipped(reason, node, true, err)
	return t.deadLetter(ectx, err)
}

// source returns the source instance that reads topic (full name), or nil.
func (t *Task) source(topic string) graph.Source {
	if src, ok := t.byTopic[topic]; ok {
		return src
	}
	n := t.cfg.Topology.SourceFor(t.cfg.AppID, topic)
	if n == nil || t.cfg.Topology.SubtopologyOf(n.Name) != t.cfg.ID.Subtopology {
		return nil
	}
	src := t.sources[n.Name]
	t.byTopic[topic] = src
	return src
}

// Offsets returns the next offset to commit for every input partition that
// has processed a record since it was added.
func (t *Task) Offsets() map[string]map[int32]kgo.EpochOffset {
	out := map[string]map[int32]kgo.EpochOffset{}
	for _, q := range t.queues {
		if q.next < 0 {
			continue
		}
		if out[q.topic] == nil {
			out[q.topic] = map[int32]kgo.EpochOffset{}
		}
		out[q.topic][q.partition] = kgo.EpochOffset{Epoch: q.epoch, Offset: q.next}
	}
	return out
}

// PunctuateWallClock fires the wall-clock punctuators due at now.
func (t *Task) PunctuateWallClock(now time.Time) error {
	return t.punctuate(topology.WallClockTime, now.UnixMilli())
}

// NextWallClockPunctuation returns when the next wall-clock punctuator is
// due; ok is false when none is scheduled.
func (t *Task) NextWallClockPunctuation() (at time.Time, ok bool) {
	var next int64 = -1
	for _, p := range t.puncts {
		if p.typ == topology.WallClockTime && !p.cancelled && (next < 0 || p.next < next) {
			next = p.next
		}
	}
	return time.UnixMilli(next), next >= 0
}

// Close closes the node instances in topological order and returns the
// first error.
func (t *Task) Close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	var first error
	for _, l := range t.lifecycle[:t.initialized] {
		if err := l.lc.Close(); err != nil && first == nil {
			first = fmt.Errorf("task %s: closing: %w", t.cfg.ID, err)
		}
	}
	if err := t.closeState(); err != nil && first == nil {
		first = fmt.Errorf("task %s: closing state: %w", t.cfg.ID, err)
	}
	return first
}

// TaskContext implementation.

var _ graph.TaskContext = (*Task)(nil)

// TaskID implements graph.TaskContext.
func (t *Task) TaskID() topology.TaskID { return t.cfg.ID }

// AppID implements graph.TaskContext.
func (t *Task) AppID() string { return t.cfg.AppID }

// RecordMetadata implements graph.TaskContext.
func (t *Task) RecordMetadata() (topology.RecordMetadata, bool) { return t.current, t.inRecord }

// StreamTime implements graph.TaskContext.
func (t *Task) StreamTime() int64 { return t.streamTime }

// AdvanceStreamTime implements graph.TaskContext.
func (t *Task) AdvanceStreamTime(ts int64) {
	t.recordTime = ts
	if ts > t.streamTime {
		t.streamTime = ts
	}
}

// SwapRecordTime implements graph.TaskContext.
func (t *Task) SwapRecordTime(ts int64) int64 {
	prev := t.recordTime
	t.recordTime = ts
	return prev
}

// WallClockTime implements graph.TaskContext.
func (t *Task) WallClockTime() time.Time { return t.cfg.Clock() }

// RequestCommit implements graph.TaskContext.
func (t *Task) RequestCommit() {
	if t.cfg.OnCommitRequest != nil {
		t.cfg.OnCommitRequest()
	}
}

// RecordSkipped implements graph.TaskContext.
func (t *Task) RecordSkipped(node, reason string) { t.skipped(reason, node, t.inRecord, nil) }

// skipped reports that the record being processed (valid: there is one)
// was skipped by node, for reason, after err (nil when dropped on
// purpose).
func (t *Task) skipped(reason, node string, valid bool, err error) {
	t.cfg.Events.RecordSkipped(event.SkipInfo{
		Reason: reason, Task: t.cfg.ID, Node: node, Err: err, Valid: valid,
		Topic: t.current.Topic, Partition: t.current.Partition, Offset: t.current.Offset,
	})
}

// Send implements graph.TaskContext.
func (t *Task) Send(rec graph.OutRecord) error {
	if t.inRecord {
		rec.Origin = t.input
	}
	return t.cfg.Producer.Send(rec)
}

// PartitionCount implements graph.TaskContext.
func (t *Task) PartitionCount(topic string) (int32, error) {
	return t.cfg.Producer.PartitionCount(topic)
}

// TopicName implements graph.TaskContext.
func (t *Task) TopicName(name string) string { return t.cfg.Topology.TopicName(t.cfg.AppID, name) }

// Logger implements graph.TaskContext.
func (t *Task) Logger() *slog.Logger { return t.log }
