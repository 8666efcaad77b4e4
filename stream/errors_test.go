package stream_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/streamtest"
	"github.com/runnel-dev/runnel/topology"
)

// panicky maps values and panics on "boom".
func panicky(t *testing.T) *stream.Builder {
	t.Helper()
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	stream.MapValues(src, func(v string) string {
		if v == "boom" {
			panic("user code exploded")
		}
		return strings.ToUpper(v)
	}, stream.Named("mapper")).To("out", serde.String, serde.String)
	return b
}

func TestPanicFailsWithProcessingError(t *testing.T) {
	d := drive(t, panicky(t))
	in := strIn(d, "in")
	pipeKVs(t, in, skv("k", "a"))
	err := in.Pipe("k", "boom")
	if !errors.Is(err, topology.ErrPanic) {
		t.Fatalf("Pipe = %v, want an error matching topology.ErrPanic", err)
	}
	var pe *topology.ProcessingError
	if !errors.As(err, &pe) {
		t.Fatalf("Pipe = %v, want a *topology.ProcessingError", err)
	}
	if pe.Node != "mapper" || !pe.Valid || pe.Record != (topology.RecordMetadata{Topic: "in", Partition: 0, Offset: 1}) || pe.Task != (topology.TaskID{}) {
		t.Fatalf("ProcessingError = %+v, want node mapper, record in-0@1, task 0_0", pe)
	}
	for _, want := range []string{"mapper", "in-0@1", "user code exploded", "0_0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error message %q does not contain %q", err.Error(), want)
		}
	}
	expectKVs(t, strOut(d, "out"), skv("k", "A"))
}

func TestLogAndContinueSkipsFailingRecord(t *testing.T) {
	var handled []topology.ErrorContext
	handler := func(ectx topology.ErrorContext, err error) topology.HandlerResponse {
		handled = append(handled, ectx)
		return stream.LogAndContinue(ectx, err)
	}
	d := drive(t, panicky(t), streamtest.Config{ProcessingErrorHandler: handler})
	pipeKVs(t, strIn(d, "in"), skv("k", "a"), skv("k", "boom"), skv("k", "b"))
	expectKVs(t, strOut(d, "out"), skv("k", "A"), skv("k", "B"))
	if len(handled) != 1 {
		t.Fatalf("handler called %d times, want 1", len(handled))
	}
	h := handled[0]
	if h.Node != "mapper" || !h.Valid || h.Record.Offset != 1 || string(h.Value) != "boom" || string(h.Key) != "k" {
		t.Fatalf("handler context = %+v, want node mapper, offset 1, raw key and value", h)
	}
}

func TestLogAndFailIsTheDefault(t *testing.T) {
	d := drive(t, panicky(t), streamtest.Config{ProcessingErrorHandler: stream.LogAndFail})
	if err := strIn(d, "in").Pipe("k", "boom"); !errors.Is(err, topology.ErrPanic) {
		t.Fatalf("Pipe under LogAndFail = %v, want the panic error", err)
	}
}

func TestProcessingErrorDeadLetter(t *testing.T) {
	d := drive(t, panicky(t), streamtest.Config{ProcessingErrorHandler: stream.LogAndContinue, DeadLetterQueueTopic: "dlq"})
	in := strIn(d, "in")
	hdrs := []topology.Header{{Key: "trace", Value: []byte("t1")}}
	if err := in.PipeRecord(topology.Record[string, string]{Key: "k", Value: "boom", Timestamp: 77, Headers: hdrs}); err != nil {
		t.Fatal(err)
	}
	rec, err := streamtest.OutputTopic(d, "dlq", serde.String, serde.String).ReadRecord()
	if err != nil {
		t.Fatal(err)
	}
	if rec.Key != "k" || rec.Value != "boom" || rec.Timestamp != 77 {
		t.Fatalf("dead letter = %+v, want the raw input record", rec)
	}
	h := headerMap(rec.Headers)
	if h["trace"] != "t1" || h["__streams.errors.topic"] != "in" || h["__streams.errors.offset"] != "0" || !strings.Contains(h["__streams.errors.message"], "user code exploded") {
		t.Fatalf("dead-letter headers = %v", h)
	}
}

func headerMap(hs []topology.Header) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		m[h.Key] = string(h.Value)
	}
	return m
}

// int64Source counts records of an Int64-valued topic.
func int64Source() *stream.Builder {
	b := stream.NewBuilder()
	stream.From(b, "nums", serde.String, serde.Int64, stream.Named("nums-source")).To("out", serde.String, serde.Int64)
	return b
}

func TestDeserializationErrorFails(t *testing.T) {
	d := drive(t, int64Source())
	in := streamtest.InputTopic(d, "nums", serde.String, serde.Int64)
	pipeKVs(t, in, stream.KV("k", int64(1)))
	err := in.PipeRaw([]byte("k"), []byte{1, 2, 3})
	var de *topology.DeserializationError
	if !errors.As(err, &de) {
		t.Fatalf("PipeRaw = %v, want a *topology.DeserializationError", err)
	}
	if de.Node != "nums-source" || de.Key || de.Topic != "nums" || de.Partition != 0 || de.Offset != 1 {
		t.Fatalf("DeserializationError = %+v, want value of nums-0@1 at nums-source", de)
	}
	if !errors.Is(err, serde.ErrSize) {
		t.Errorf("error %v does not wrap the serde's error", err)
	}
	want := `deserializing value of nums-0@1 at source "nums-source": ` + de.Err.Error()
	if msg := err.Error(); msg != want {
		t.Errorf("message %q, want %q: the topic-partition@offset and the source", msg, want)
	}
	// The failing record was dropped; the next one flows.
	pipeKVs(t, in, stream.KV("k", int64(2)))
	expectKVs(t, streamtest.OutputTopic(d, "out", serde.String, serde.Int64), stream.KV("k", int64(1)), stream.KV("k", int64(2)))
}

func TestDeserializationErrorContinue(t *testing.T) {
	d := drive(t, int64Source(), streamtest.Config{DeserializationErrorHandler: stream.LogAndContinue})
	in := streamtest.InputTopic(d, "nums", serde.String, serde.Int64)
	if err := in.PipeRaw([]byte("k"), []byte{1, 2, 3}); err != nil {
		t.Fatalf("PipeRaw under LogAndContinue: %v", err)
	}
	pipeKVs(t, in, stream.KV("k", int64(5)))
	expectKVs(t, streamtest.OutputTopic(d, "out", serde.String, serde.Int64), stream.KV("k", int64(5)))
	// No dead-letter topic configured: nothing else was written.
	if !streamtest.OutputTopic(d, "", serde.Bytes, serde.Bytes).IsEmpty() {
		t.Fatal("records written to an empty topic name")
	}
}

func TestDeserializationErrorDeadLetter(t *testing.T) {
	d := drive(t, int64Source(), streamtest.Config{DeserializationErrorHandler: stream.LogAndContinue, DeadLetterQueueTopic: "nums-dlq"})
	in := streamtest.InputTopic(d, "nums", serde.String, serde.Int64)
	pipeKVs(t, in, stream.KV("k", int64(1)))
	in.Advance(1500 * time.Millisecond)
	if err := in.PipeRaw([]byte("bad-key"), []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	dlq := streamtest.OutputTopic(d, "nums-dlq", serde.Bytes, serde.Bytes)
	recs, err := dlq.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("dead-letter topic holds %d records, want 1", len(recs))
	}
	rec := recs[0]
	if string(rec.Key) != "bad-key" || string(rec.Value) != "\x01\x02\x03" || rec.Timestamp != 1500 {
		t.Fatalf("dead letter key/value = %q/%q, want the raw input", rec.Key, rec.Value)
	}
	h := headerMap(rec.Headers)
	want := map[string]string{
		"__streams.errors.topic":     "nums",
		"__streams.errors.partition": "0",
		"__streams.errors.offset":    "1",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("header %s = %q, want %q", k, h[k], v)
		}
	}
	if h["__streams.errors.exception"] == "" || !strings.Contains(h["__streams.errors.message"], "nums-0@1") {
		t.Errorf("exception/message headers = %q / %q", h["__streams.errors.exception"], h["__streams.errors.message"])
	}
	expectKVs(t, streamtest.OutputTopic(d, "out", serde.String, serde.Int64), stream.KV("k", int64(1)))
}
