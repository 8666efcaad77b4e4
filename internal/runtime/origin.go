package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/twmb/franz-go/pkg/kgo"
)

// recordOrigin is the context of a produced record (its kgo.Record.Context)
// that locates the input record whose processing produced it
// (graph.OutRecord.Origin), so that a record Kafka refuses is reported
// with the input that produced it, not only the topic it was going to.
// It copies what the error names instead of pointing at the input record,
// whose key and value share the memory of its whole fetched batch: an
// output waiting for delivery must not keep that batch alive.
type recordOrigin struct {
	context.Context // the producer's: cancelling it fails the record
	topic           string
	partition       int32
	offset          int64
	keyLen          int // of the whole key; key holds its first bytes
	key             [maxKeyInError]byte
}

// originKey is the context key under which a recordOrigin finds itself.
type originKey struct{}

// Value returns o for originKey.
func (o *recordOrigin) Value(key any) any {
	if key == (originKey{}) {
		return o
	}
	return o.Context.Value(key)
}

// originRecord is a produced record together with its context: one
// allocation per record, where a separate recordOrigin would be two.
type originRecord struct {
	rec    kgo.Record
	origin recordOrigin
}

// newKafkaRecord returns the kgo.Record that produces rec, with a context
// carrying rec.Origin when there is one (and ctx, the producer's, either
// way).
func newKafkaRecord(ctx context.Context, rec graph.OutRecord) *kgo.Record {
	if rec.Origin == nil {
		kr := &kgo.Record{Context: ctx}
		fillKafkaRecord(kr, rec)
		return kr
	}
	in := rec.Origin
	or := &originRecord{origin: recordOrigin{Context: ctx, topic: in.Topic, partition: in.Partition, offset: in.Offset, keyLen: len(in.Key)}}
	copy(or.origin.key[:], in.Key)
	or.rec.Context = &or.origin
	fillKafkaRecord(&or.rec, rec)
	return &or.rec
}

// fillKafkaRecord sets kr's topic, partition, key, value, headers and
// timestamp from rec. (Built in place: a kgo.Record value copied into the
// heap would be a second allocation per record.)
func fillKafkaRecord(kr *kgo.Record, rec graph.OutRecord) {
	kr.Topic, kr.Partition, kr.Key, kr.Value = rec.Topic, rec.Partition, rec.Key, rec.Value
	kr.Headers, kr.Timestamp = rec.Headers, time.UnixMilli(rec.Timestamp)
}

// maxKeyInError is how many bytes of a key an error message quotes.
const maxKeyInError = 64

// produceError is the error of a record that failed to produce: it names
// the target topic and, when known, the input record it came from.
func produceError(rec *kgo.Record, err error) error {
	var o *recordOrigin
	if rec.Context != nil {
		o, _ = rec.Context.Value(originKey{}).(*recordOrigin)
	}
	if o == nil {
		return fmt.Errorf("stream: producing to %s: %w", rec.Topic, err)
	}
	key, more := o.key[:min(o.keyLen, maxKeyInError)], ""
	if o.keyLen > maxKeyInError {
		more = "..."
	}
	return fmt.Errorf("stream: producing to %s the output of input record %s-%d@%d (key %q%s): %w",
		rec.Topic, o.topic, o.partition, o.offset, key, more, err)
}
