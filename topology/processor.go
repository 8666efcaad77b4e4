package topology

import (
	"fmt"
	"time"

	"github.com/runnel-dev/runnel/state"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Header is a Kafka record header. It is franz-go's type, so headers move
// between Kafka and processors without copying.
type Header = kgo.RecordHeader

// Record is one typed record flowing through a topology: key, value,
// timestamp (milliseconds since the Unix epoch) and headers.
//
// Records are passed by value. Headers flow through operators unchanged
// unless a processor replaces them; a processor that modifies the Headers
// slice in place must copy it first, because other branches may share it.
type Record[K, V any] struct {
	Key       K
	Value     V
	Timestamp int64
	Headers   []Header
	// Tombstone marks a record whose value is null: a deleted table row,
	// as KTable.ToStream emits. Value is then the zero value, and sinks
	// write a null value (a tombstone in a compacted topic). Operators
	// that compute a new value (MapValues, Map, ...) yield ordinary
	// records; Filter, Peek, Merge, Split, SelectKey, Repartition and To
	// keep the mark. Sources set it for records whose Kafka value is null.
	Tombstone bool
}

// RecordMetadata locates the input record being processed.
type RecordMetadata struct {
	Topic     string
	Partition int32
	Offset    int64
}

// TaskID identifies a task: a subtopology and the partition number of its
// input topics. Its String form is Kafka Streams' "subtopology_partition".
type TaskID struct {
	Subtopology int
	Partition   int32
}

// String returns the task id as "subtopology_partition", e.g. "0_3".
func (id TaskID) String() string { return fmt.Sprintf("%d_%d", id.Subtopology, id.Partition) }

// PunctuationType says which clock drives a punctuator.
type PunctuationType int

const (
	// StreamTime punctuators fire when the task's stream time (the largest
	// record timestamp it has processed) passes the next interval boundary.
	// They do not fire while no records arrive.
	StreamTime PunctuationType = iota
	// WallClockTime punctuators fire on the system clock (the test driver's
	// controllable clock in streamtest), whether or not records arrive.
	WallClockTime
)

// String returns "STREAM_TIME" or "WALL_CLOCK_TIME", as in Kafka Streams.
func (t PunctuationType) String() string {
	if t == WallClockTime {
		return "WALL_CLOCK_TIME"
	}
	return "STREAM_TIME"
}

// Punctuator is called by a scheduled punctuation with the time (in
// milliseconds) that triggered it: the stream time or the wall-clock time.
// An error fails the task as a processing error.
type Punctuator func(timestamp int64) error

// Cancellable cancels a scheduled punctuation.
type Cancellable interface {
	// Cancel stops further calls of the punctuator. It is idempotent.
	Cancel()
}

// Processor is a user-defined processing step: the Processor API. An instance
// belongs to one task and is only called from that task's goroutine, so it
// needs no locks.
//
// Init is called once before the first record, Process for each record, Close
// when the task closes (also after a failure). An error (or panic) in Process
// goes to the processing error handler, which fails the task or skips the
// record. An error in Init fails the task, and with it the application,
// whatever the error handlers decide.
type Processor[KIn, VIn, KOut, VOut any] interface {
	Init(ctx ProcessorContext[KOut, VOut]) error
	Process(rec Record[KIn, VIn]) error
	Close() error
}

// ProcessorContext is what a Processor uses to forward records and reach its
// task: record metadata, clocks, punctuation and commits. It must only be
// used from the task's goroutine (inside Init, Process, Close or a
// punctuator).
type ProcessorContext[K, V any] interface {
	// Forward sends rec to every child of the processor and returns the
	// first error a child returned.
	Forward(rec Record[K, V]) error
	// ForwardTo sends rec to the named child only; an unknown name is an
	// error wrapping ErrUnknownChild.
	ForwardTo(child string, rec Record[K, V]) error
	// TaskID is the task this processor instance belongs to.
	TaskID() TaskID
	// AppID is the application id.
	AppID() string
	// RecordMetadata returns the topic, partition and offset of the input
	// record being processed; ok is false inside a punctuator.
	RecordMetadata() (md RecordMetadata, ok bool)
	// StreamTime is the task's stream time in milliseconds (-1 before the
	// first record).
	StreamTime() int64
	// WallClockTime is the current system time (the driver's clock in
	// streamtest).
	WallClockTime() time.Time
	// Schedule calls fn every interval on the given clock until cancelled
	// or the task closes. interval must be at least 1 ms.
	Schedule(interval time.Duration, typ PunctuationType, fn Punctuator) (Cancellable, error)
	// Commit asks the runtime to commit as soon as possible instead of
	// waiting for the commit interval.
	Commit()
	// Store returns a state store connected to this processor (see
	// stream.WithStores); use state.KeyValue to get its typed interface.
	// Asking for a store the processor is not connected to is an error.
	// Stores are restored before Init runs.
	Store(name string) (state.Store, error)
}

// ProcessorFuncs is a Processor built from functions, for processors that
// need no type of their own; nil functions do nothing. OnProcess and
// OnClose may use the context saved by Init in Ctx. A supplier must return
// a new ProcessorFuncs for every task.
type ProcessorFuncs[KIn, VIn, KOut, VOut any] struct {
	OnInit    func(ctx ProcessorContext[KOut, VOut]) error
	OnProcess func(ctx ProcessorContext[KOut, VOut], rec Record[KIn, VIn]) error
	OnClose   func() error
	// Ctx is the context given to Init.
	Ctx ProcessorContext[KOut, VOut]
}

var _ Processor[string, string, string, string] = (*ProcessorFuncs[string, string, string, string])(nil)

// Init implements Processor.
func (p *ProcessorFuncs[KIn, VIn, KOut, VOut]) Init(ctx ProcessorContext[KOut, VOut]) error {
	p.Ctx = ctx
	if p.OnInit != nil {
		return p.OnInit(ctx)
	}
	return nil
}

// Process implements Processor.
func (p *ProcessorFuncs[KIn, VIn, KOut, VOut]) Process(rec Record[KIn, VIn]) error {
	if p.OnProcess != nil {
		return p.OnProcess(p.Ctx, rec)
	}
	return nil
}

// Close implements Processor.
func (p *ProcessorFuncs[KIn, VIn, KOut, VOut]) Close() error {
	if p.OnClose != nil {
		return p.OnClose()
	}
	return nil
}
