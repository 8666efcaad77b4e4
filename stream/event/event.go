// Package event describes what a running stream.App does, as events: tasks
// assigned and revoked, rebalances, commits, aborted transactions,
// restoration of state stores, skipped records and state changes.
//
// An application receives them through a Listener set in
// stream.Config.EventListener. The application's Prometheus metrics and
// its operator logs are fed from the same events, so a test can wait for
// an event instead of scraping logs or metrics:
//
//	assigned := make(chan []topology.TaskID, 10)
//	cfg.EventListener = &event.Listener{
//		TasksAssigned: func(info event.TasksInfo) {
//			select {
//			case assigned <- info.Tasks:
//			default: // never block: the runtime waits for listeners
//			}
//		},
//	}
//
// The package is separate from stream so that the runtime, which stream
// imports, can report events without importing stream.
package event

import (
	"time"

	"github.com/runnel-dev/runnel/topology"
)

// Listener is a set of functions called on events. Any of them may be nil
// (EnsureDefaults makes them no-ops). It is a struct of funcs, as Pebble's
// EventListener, so new events are added as new fields without breaking
// listeners written before them.
//
// The functions are called synchronously from the goroutine where the
// event happens (the group's callback goroutine, a task's goroutine, the
// poll loop), possibly concurrently and with the runtime's locks held:
// they must be safe for concurrent use, return quickly and not call back
// into the App.
type Listener struct {
	// TasksAssigned is called when the group assigned tasks to this
	// instance and they were opened (before they restore).
	TasksAssigned func(TasksInfo)
	// TasksRevoked is called when tasks were closed because the group
	// revoked them, lost them, or the instance stops.
	TasksRevoked func(TasksInfo)
	// RebalanceStart is called when the instance joins the group or a
	// rebalance takes its tasks; RebalanceEnd when tasks are assigned and
	// running again.
	RebalanceStart func(RebalanceInfo)
	RebalanceEnd   func(RebalanceInfo)
	// Commit is called after every successful commit: offsets (and under
	// exactly-once the transaction) committed, local state durable.
	Commit func(CommitInfo)
	// TransactionAbort is called when a transaction was aborted under
	// exactly-once: the records since the last commit are processed again.
	TransactionAbort func(AbortInfo)
	// RestoreStart, RestoreProgress and RestoreEnd are called when a
	// task's store starts restoring from its changelog, after each batch
	// restored, and when it caught up. A store with nothing to restore
	// reports none of them.
	RestoreStart    func(RestoreInfo)
	RestoreProgress func(RestoreInfo)
	RestoreEnd      func(RestoreInfo)
	// RestoreSuspended is called instead of RestoreEnd when a restoration
	// stops before it caught up because its task closed (the app stopped
	// or the task moved away); Records counts what was restored.
	RestoreSuspended func(RestoreInfo)
	// RecordSkipped is called for every record skipped: an error handler
	// said to continue, or an operator dropped it on purpose.
	RecordSkipped func(SkipInfo)
	// StateChange is called when the App's state changes.
	StateChange func(StateChangeInfo)
}

// EnsureDefaults sets every nil function of l to a no-op.
func (l *Listener) EnsureDefaults() {
	ensure(&l.TasksAssigned)
	ensure(&l.TasksRevoked)
	ensure(&l.RebalanceStart)
	ensure(&l.RebalanceEnd)
	ensure(&l.Commit)
	ensure(&l.TransactionAbort)
	ensure(&l.RestoreStart)
	ensure(&l.RestoreProgress)
	ensure(&l.RestoreEnd)
	ensure(&l.RestoreSuspended)
	ensure(&l.RecordSkipped)
	ensure(&l.StateChange)
}

func ensure[T any](fn *func(T)) {
	if *fn == nil {
		*fn = func(T) {}
	}
}

// Tee returns a Listener that calls a's function and then b's for every
// event. Nil functions of either are skipped.
func Tee(a, b Listener) Listener {
	a.EnsureDefaults()
	b.EnsureDefaults()
	return Listener{
		TasksAssigned:    tee(a.TasksAssigned, b.TasksAssigned),
		TasksRevoked:     tee(a.TasksRevoked, b.TasksRevoked),
		RebalanceStart:   tee(a.RebalanceStart, b.RebalanceStart),
		RebalanceEnd:     tee(a.RebalanceEnd, b.RebalanceEnd),
		Commit:           tee(a.Commit, b.Commit),
		TransactionAbort: tee(a.TransactionAbort, b.TransactionAbort),
		RestoreStart:     tee(a.RestoreStart, b.RestoreStart),
		RestoreProgress:  tee(a.RestoreProgress, b.RestoreProgress),
		RestoreEnd:       tee(a.RestoreEnd, b.RestoreEnd),
		RestoreSuspended: tee(a.RestoreSuspended, b.RestoreSuspended),
		RecordSkipped:    tee(a.RecordSkipped, b.RecordSkipped),
		StateChange:      tee(a.StateChange, b.StateChange),
	}
}

func tee[T any](a, b func(T)) func(T) {
	return func(info T) {
		a(info)
		b(info)
	}
}

// TasksInfo names tasks that were assigned or revoked.
type TasksInfo struct {
	// Tasks are the task ids, sorted. For TasksAssigned they are all the
	// tasks the instance owns after the assignment.
	Tasks []topology.TaskID
	// Lost is set when the group took the tasks away without a revocation
	// (the member's session expired): they are closed without committing.
	Lost bool
}

// RebalanceInfo describes a rebalance.
type RebalanceInfo struct {
	// Reason is why the rebalance started: "join" (the instance joins the
	// group), "revoke" or "lost". Empty for RebalanceEnd.
	Reason string
}

// CommitInfo describes a successful commit.
type CommitInfo struct {
	// Records is how many input records were processed since the
	// previous commit.
	Records int64
	// Partitions is how many input partitions had offsets committed.
	Partitions int
	// Duration is how long the commit took, from stopping the tasks at a
	// record boundary to the commit's acknowledgment.
	Duration time.Duration
}

// Reasons of AbortInfo.
const (
	// AbortProduceError: a record of the transaction failed to produce in
	// a way that fails the whole transaction (e.g. a fenced producer).
	AbortProduceError = "produce_error"
	// AbortRebalance: the group was rebalancing when the transaction
	// ended.
	AbortRebalance = "rebalance"
	// AbortKafka: Kafka, or franz-go's session, aborted the transaction
	// (e.g. after a revocation, or a stale group generation).
	AbortKafka = "aborted"
)

// AbortInfo describes an aborted transaction.
type AbortInfo struct {
	// Reason is one of AbortProduceError, AbortRebalance and AbortKafka.
	Reason string
	// Err is the produce error for AbortProduceError, else nil.
	Err error
}

// RestoreInfo describes the restoration of one store of one task from its
// changelog partition.
type RestoreInfo struct {
	Task      topology.TaskID
	Store     string
	Topic     string // the changelog topic
	Partition int32
	// StartOffset and EndOffset are the range of changelog offsets being
	// restored: from the store's checkpoint (or the changelog's start) up
	// to the end it had when restoration began.
	StartOffset, EndOffset int64
	// FullReason, for RestoreStart, says why the store restores from the
	// start of its changelog rather than its local checkpoint (e.g. "it
	// has no local checkpoint"); empty when it restores only the tail.
	FullReason string
	// Offset is, for RestoreProgress and RestoreEnd, the offset restored
	// up to (the next one to restore).
	Offset int64
	// Records is the number of records restored: in the batch for
	// RestoreProgress, in all for RestoreEnd.
	Records int64
	// Duration is, for RestoreEnd, how long the restoration took.
	Duration time.Duration
}

// SkipInfo describes a skipped record.
type SkipInfo struct {
	// Reason is as in the runnel_records_skipped_total metric:
	// "deserialization", "processing" or "production" (an error handler
	// said to continue), "invalid_timestamp" (negative extracted
	// timestamp), "null_key" (null key reaching a grouping or table
	// source), "null_value" (tombstone reaching a stream aggregation).
	Reason string
	// Task is the task that skipped it (zero for production errors).
	Task topology.TaskID
	// Node is the node that failed or dropped the record ("" when
	// unknown).
	Node string
	// Topic, Partition and Offset locate the record: the input record
	// being processed (Valid is false in punctuation), or the output
	// record that failed to produce (Offset -1).
	Topic     string
	Partition int32
	Offset    int64
	Valid     bool
	// Err is the error the handler was given (nil when an operator
	// dropped the record on purpose).
	Err error
}

// StateChangeInfo describes a change of the App's state. Old and New are
// the states' names, as stream.State's String returns them (Kafka
// Streams' names, e.g. "RUNNING").
type StateChangeInfo struct {
	Old, New string
}
