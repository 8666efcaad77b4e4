package runtime

import (
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kgo"
)

// handleError passes an error raised outside the processing of an input
// record's own path (a punctuator, or nodes downstream of a record cache
// flush or eviction) to the processing error handler. It returns nil when
// the handler says to continue (logged and counted as skipped), else the
// *topology.ProcessingError to fail with.
func (t *Task) handleError(err error, what string) error {
	if errors.As(err, new(*handledError)) {
		return err // the handler already said to fail
	}
	if serr := t.stateFailed(); serr != nil {
		return &handledError{serr}
	}
	err = t.processingError(err, t.inRecord)
	var pe *topology.ProcessingError
	errors.As(err, &pe)
	ectx := errorContext(t.cfg.ID, pe.Node, pe.Record, pe.Valid, t.recordTime, nil)
	if t.cfg.OnProcessingError == nil || t.cfg.OnProcessingError(ectx, err) != topology.Continue {
		return &handledError{err}
	}
	t.log.Warn(what+" failed, continuing", "node", pe.Node, "err", err)
	t.skipped("processing", pe.Node, pe.Valid, err)
	return nil
}

// handledError is an error the processing error handler has already said
// to fail on. It may travel back up through a store (an eviction inside a
// Put) and the nodes above it; the task then fails with it without asking
// the handler again.
type handledError struct{ err error }

func (e *handledError) Error() string { return e.err.Error() }

func (e *handledError) Unwrap() error { return e.err }

// HandleFlushError implements graph.TaskContext.
func (t *Task) HandleFlushError(err error) error { return t.handleError(err, "cache flush") }

// callSource runs the source and everything downstream of it, recovering a
// panic that escaped the nodes' own recovery.
func callSource(src graph.Source, rec *kgo.Record) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v\n%s", topology.ErrPanic, p, debug.Stack())
		}
	}()
	return src.Process(rec)
}

// processingError fills in the task and record of a processing error.
func (t *Task) processingError(err error, inRecord bool) error {
	var pe *topology.ProcessingError
	if !errors.As(err, &pe) {
		pe = &topology.ProcessingError{Err: err}
	} else {
		c := *pe
		pe = &c
	}
	pe.Task, pe.Record, pe.Valid = t.cfg.ID, t.current, inRecord
	return pe
}

// deadLetter writes a skipped record to the dead-letter topic with headers
// describing the failure (the header names of Kafka Streams' KIP-1034).
func (t *Task) deadLetter(ectx topology.ErrorContext, err error) error {
	if t.cfg.DeadLetterTopic == "" {
		return nil
	}
	headers := append(slices.Clip(ectx.Headers),
		topology.Header{Key: "__streams.errors.exception", Value: []byte(fmt.Sprintf("%T", err))},
		topology.Header{Key: "__streams.errors.message", Value: []byte(err.Error())},
		topology.Header{Key: "__streams.errors.topic", Value: []byte(ectx.Record.Topic)},
		topology.Header{Key: "__streams.errors.partition", Value: []byte(strconv.Itoa(int(ectx.Record.Partition)))},
		topology.Header{Key: "__streams.errors.offset", Value: []byte(strconv.FormatInt(ectx.Record.Offset, 10))},
	)
	return t.Send(graph.OutRecord{
		Topic: t.cfg.DeadLetterTopic, Partition: -1,
		Key: ectx.Key, Value: ectx.Value, Headers: headers, Timestamp: ectx.Timestamp,
		Origin: t.input, // the record it is a copy of
	})
}

// errorContext builds what an error handler is told: the task, the node
// that failed, where the record is (valid is false in punctuation) and its
// timestamp ts. When raw is set (the input record, or the output record
// for production errors), its key, value, headers and timestamp are
// passed along instead.
func errorContext(task topology.TaskID, node string, at topology.RecordMetadata, valid bool, ts int64, raw *kgo.Record) topology.ErrorContext {
	ectx := topology.ErrorContext{Task: task, Node: node, Record: at, Valid: valid, Timestamp: ts}
	if raw != nil {
		ectx.Key, ectx.Value, ectx.Headers, ectx.Timestamp = raw.Key, raw.Value, raw.Headers, raw.Timestamp.UnixMilli()
	}
	return ectx
}
