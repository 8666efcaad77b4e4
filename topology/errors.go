package topology

import (
	"errors"
	"fmt"
)

var (
	// ErrUnknownChild is returned by ProcessorContext.ForwardTo for a child
	// name the processor does not have.
	ErrUnknownChild = errors.New("topology: unknown child node")
	// ErrInvalid is wrapped by every error Build reports about the shape of
	// a topology.
	ErrInvalid = errors.New("topology: invalid topology")
	// ErrNoSource is returned by stream.NewApp, stream.NewAppFromTopology
	// and streamtest.New for a topology that reads no topic: an application
	// running it would wait in REBALANCING forever. It wraps ErrInvalid.
	ErrNoSource = fmt.Errorf("%w: it has no source: read a topic with stream.From, stream.FromTopics, stream.FromPattern or stream.Table", ErrInvalid)
)

// NodeError is a build-time error about one node of a topology.
type NodeError struct {
	Node string
	Err  error
}

// Error names the node, e.g. `node "KSTREAM-FILTER-0000000001": predicate is nil`.
func (e *NodeError) Error() string { return fmt.Sprintf("node %q: %v", e.Node, e.Err) }

// Unwrap returns the underlying error.
func (e *NodeError) Unwrap() error { return e.Err }

// Is reports ErrInvalid for every NodeError, so callers can test
// errors.Is(err, topology.ErrInvalid).
func (e *NodeError) Is(target error) bool { return target == ErrInvalid }

// DeserializationError is returned by a source node when the key or value of
// an input record cannot be decoded. The runtime hands it to the configured
// deserialization handler.
type DeserializationError struct {
	Node string
	RecordMetadata
	// Key is true when the key failed to decode, false for the value.
	Key bool
	Err error
}

// Error names the source node and the record's topic, partition and
// offset. (When the handler fails the task with it, the error the
// application returns also says how to skip such records instead.)
func (e *DeserializationError) Error() string {
	part := "value"
	if e.Key {
		part = "key"
	}
	return fmt.Sprintf("deserializing %s of %s-%d@%d at source %q: %v", part, e.Topic, e.Partition, e.Offset, e.Node, e.Err)
}

// Unwrap returns the serde's error.
func (e *DeserializationError) Unwrap() error { return e.Err }

// ProcessingError is an error (or a recovered panic) raised by user code or an
// operator while processing a record or punctuating. The runtime hands it to
// the configured processing error handler.
type ProcessingError struct {
	Task TaskID
	Node string
	// Record locates the input record; Valid is false for punctuation and
	// for records a cache flush at commit sent downstream.
	Record RecordMetadata
	Valid  bool
	Err    error
}

// Error names the task, node and input record.
func (e *ProcessingError) Error() string {
	if !e.Valid {
		return fmt.Sprintf("task %s: node %q (no input record: punctuation or cache flush): %v", e.Task, e.Node, e.Err)
	}
	return fmt.Sprintf("task %s: node %q processing %s-%d@%d: %v", e.Task, e.Node, e.Record.Topic, e.Record.Partition, e.Record.Offset, e.Err)
}

// Unwrap returns the underlying error.
func (e *ProcessingError) Unwrap() error { return e.Err }

// ErrPanic is wrapped by the ProcessingError of a panic recovered from user
// code; the error message carries the panic value and the goroutine stack.
var ErrPanic = errors.New("topology: panic in user code")

// HandlerResponse is an error handler's decision.
type HandlerResponse int

const (
	// Fail stops the application with the error (Kafka Streams' FAIL). The
	// failing record is not committed as processed.
	Fail HandlerResponse = iota
	// Continue skips the record, counts it in a metric and logs it (Kafka
	// Streams' CONTINUE); with a dead-letter topic configured the raw input
	// record is also written there.
	Continue
)

// ErrorContext describes the record an error handler is called for.
type ErrorContext struct {
	Task TaskID
	// Node is the node that failed ("" when unknown).
	Node string
	// Record locates the input record; Valid is false for errors raised in
	// punctuation. For production errors it locates the output record
	// (Offset -1).
	Record RecordMetadata
	Valid  bool
	// Key, Value, Headers and Timestamp are the raw input record's (the
	// output record's for production errors). They must not be modified.
	Key, Value []byte
	Headers    []Header
	Timestamp  int64
}

// ErrorHandler decides what happens to a record that failed to deserialize,
// process or produce. It is called from the task's goroutine (production
// errors: from the producer's) and must not block for long.
type ErrorHandler func(ctx ErrorContext, err error) HandlerResponse
