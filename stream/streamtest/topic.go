package streamtest

import (
	"fmt"
	"slices"
	"time"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/topology"
)

// Input writes records to one topic of a Driver, serializing keys and values
// with its serdes. It keeps its own record time, used by Pipe and PipeRaw.
// Like its Driver, an Input is not safe for concurrent use.
type Input[K, V any] struct {
	d     *Driver
	topic string
	ks    serde.Serde[K]
	vs    serde.Serde[V]
	now   time.Time
}

// InputTopic returns an Input writing to topic (its full name; an internal
// topic is "<app-id>-<name>"). Its record time starts at Config.StartTime.
// Piping to a topic that no source of the topology reads is an error. It
// panics if d or a serde is nil.
func InputTopic[K, V any](d *Driver, topic string, keySerde serde.Serde[K], valueSerde serde.Serde[V]) *Input[K, V] {
	if d == nil || keySerde == nil || valueSerde == nil {
		panic("streamtest: InputTopic needs a driver and two serdes")
	}
	return &Input[K, V]{d: d, topic: topic, ks: keySerde, vs: valueSerde, now: d.cfg.StartTime}
}

// Pipe writes a record with the input's current record time and no headers,
// and processes it and everything it causes downstream before returning. An
// error is returned when a serde fails, when no source reads the topic, or
// when an error handler says to fail (the *topology.ProcessingError or
// *topology.DeserializationError, for errors.As).
func (in *Input[K, V]) Pipe(key K, value V) error {
	return in.PipeAt(key, value, in.now)
}

// PipeAt is Pipe with the record timestamp ts (millisecond precision). It
// does not change the input's record time.
func (in *Input[K, V]) PipeAt(key K, value V, ts time.Time) error {
	return in.PipeRecord(topology.Record[K, V]{Key: key, Value: value, Timestamp: ts.UnixMilli()})
}

// PipeRecord is Pipe with full control of the record: its timestamp (in
// milliseconds) and headers are used as given. The driver copies the
// headers.
func (in *Input[K, V]) PipeRecord(rec topology.Record[K, V]) error {
	key, err := in.ks.Serialize(in.topic, rec.Key)
	if err != nil {
		return fmt.Errorf("streamtest: serializing key for topic %q: %w", in.topic, err)
	}
	value, err := in.vs.Serialize(in.topic, rec.Value)
	if err != nil {
		return fmt.Errorf("streamtest: serializing value for topic %q: %w", in.topic, err)
	}
	return in.d.pipe(in.topic, key, value, rec.Headers, rec.Timestamp)
}

// PipeRaw writes a record with the given key and value bytes (nil is Kafka's
// null) and the input's current record time, bypassing the serdes: use it
// to test deserialization error handling.
func (in *Input[K, V]) PipeRaw(key, value []byte) error {
	return in.d.pipe(in.topic, key, value, nil, in.now.UnixMilli())
}

// Advance moves the input's record time by dur (which may be negative, to
// produce out-of-order records). Other Inputs and the wall clock are not
// affected.
func (in *Input[K, V]) Advance(dur time.Duration) { in.now = in.now.Add(dur) }

// Output reads the records the topology produced to one topic, decoding them
// with its serdes. Reading consumes: every Output of the same topic reads
// from the same queue, in the order the records were produced. Like its
// Driver, an Output is not safe for concurrent use.
type Output[K, V any] struct {
	d     *Driver
	topic string
	ks    serde.Serde[K]
	vs    serde.Serde[V]
}

// OutputTopic returns an Output reading topic (its full name; an internal
// topic is "<app-id>-<name>", and a dead-letter topic can be read too). It
// panics if d or a serde is nil.
func OutputTopic[K, V any](d *Driver, topic string, keySerde serde.Serde[K], valueSerde serde.Serde[V]) *Output[K, V] {
	if d == nil || keySerde == nil || valueSerde == nil {
		panic("streamtest: OutputTopic needs a driver and two serdes")
	}
	return &Output[K, V]{d: d, topic: topic, ks: keySerde, vs: valueSerde}
}

// ReadRecord removes the oldest unread record of the topic and returns it
// decoded, with its timestamp and headers; a null value (a tombstone) is
// returned as the zero value with Tombstone set. With no record left it returns an
// error wrapping ErrNoRecord. A record that fails to decode is removed too,
// and the serde's error is returned.
func (o *Output[K, V]) ReadRecord() (topology.Record[K, V], error) {
	q := o.d.out[o.topic]
	if len(q) == 0 {
		return topology.Record[K, V]{}, fmt.Errorf("%w in topic %q", ErrNoRecord, o.topic)
	}
	raw := q[0]
	q[0] = nil
	o.d.out[o.topic] = q[1:]
	key, err := o.ks.Deserialize(o.topic, raw.Key)
	if err != nil {
		return topology.Record[K, V]{}, fmt.Errorf("streamtest: deserializing key of %s-0@%d: %w", o.topic, raw.Offset, err)
	}
	value, err := o.vs.Deserialize(o.topic, raw.Value)
	if err != nil {
		return topology.Record[K, V]{}, fmt.Errorf("streamtest: deserializing value of %s-0@%d: %w", o.topic, raw.Offset, err)
	}
	return topology.Record[K, V]{Key: key, Value: value, Timestamp: raw.Timestamp.UnixMilli(), Headers: slices.Clone(raw.Headers), Tombstone: raw.Value == nil}, nil
}

// ReadKeyValue is ReadRecord returning only the key and value.
func (o *Output[K, V]) ReadKeyValue() (stream.KeyValue[K, V], error) {
	rec, err := o.ReadRecord()
	return stream.KV(rec.Key, rec.Value), err
}

// ReadAll removes and returns every unread record of the topic, oldest
// first; with none it returns an empty slice. On a decoding error it returns
// the records decoded before it and the error; the rest stay unread.
func (o *Output[K, V]) ReadAll() ([]topology.Record[K, V], error) {
	out := make([]topology.Record[K, V], 0, len(o.d.out[o.topic]))
	for !o.IsEmpty() {
		rec, err := o.ReadRecord()
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// IsEmpty reports whether the topic has no unread record.
func (o *Output[K, V]) IsEmpty() bool { return len(o.d.out[o.topic]) == 0 }
