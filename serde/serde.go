package serde

import (
	"errors"
	"fmt"
)

// Serde serializes and deserializes values of type T for Kafka record keys and
// values.
//
// Implementations used by a running application are called from several task
// goroutines at once and must be safe for concurrent use. See the package
// documentation for how nil data (Kafka's null) is handled.
type Serde[T any] interface {
	// Serialize encodes value for a record on topic.
	Serialize(topic string, value T) ([]byte, error)
	// Deserialize decodes data read from a record on topic.
	Deserialize(topic string, data []byte) (T, error)
}

// ErrSize is wrapped by the errors the fixed-width serdes ([Int32], [Int64],
// [Float64]) return when Deserialize is given non-nil data of the wrong
// length. The error message names the serde, the topic, and the actual and
// expected sizes.
var ErrSize = errors.New("serde: wrong data size")

// sizeError returns an error wrapping ErrSize.
func sizeError(name, topic string, got, want int) error {
	return fmt.Errorf("serde: %s on topic %q: got %d bytes, want %d: %w", name, topic, got, want, ErrSize)
}

// Func returns a Serde that calls ser to serialize and de to deserialize.
//
// Both ser and de must be non-nil; a nil function panics when the Serde is
// used. The returned Serde adds no behaviour of its own: nil data is passed to
// de as is, so de decides what a null means. It is safe for concurrent use if
// ser and de are.
func Func[T any](ser func(topic string, v T) ([]byte, error), de func(topic string, b []byte) (T, error)) Serde[T] {
	return funcSerde[T]{ser: ser, de: de}
}

// funcSerde is the Serde returned by Func.
type funcSerde[T any] struct {
	ser func(topic string, v T) ([]byte, error)
	de  func(topic string, b []byte) (T, error)
}

// Serialize calls the ser function given to Func.
func (s funcSerde[T]) Serialize(topic string, value T) ([]byte, error) {
	return s.ser(topic, value)
}

// Deserialize calls the de function given to Func.
func (s funcSerde[T]) Deserialize(topic string, data []byte) (T, error) {
	return s.de(topic, data)
}
