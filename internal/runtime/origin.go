package runtime

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recordOrigin is the context of a produced record (its kgo.Record.Context)
// that carries the input record whose processing produced it
// (graph.OutRecord.Origin), so that a record Kafka refuses is reported
// with the input that produced it, not only the topic it was going to.
type recordOrigin struct {
	context.Context // the producer's: cancelling it fails the record
	rec             *kgo.Record
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

// withOrigin returns ctx carrying origin, or ctx when origin is nil.
func withOrigin(ctx context.Context, origin *kgo.Record) context.Context {
	if origin == nil {
		return ctx
	}
	return &recordOrigin{Context: ctx, rec: origin}
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
	key, more := o.rec.Key, ""
	if len(key) > maxKeyInError {
		key, more = key[:maxKeyInError], "..."
	}
	return fmt.Errorf("stream: producing to %s the output of input record %s-%d@%d (key %q%s): %w",
		rec.Topic, o.rec.Topic, o.rec.Partition, o.rec.Offset, key, more, err)
}
