package serde

import (
	"encoding/json"
	"fmt"
)

// JSON returns a Serde that encodes values of type T with encoding/json.
//
// Deserialize(nil) returns the zero T and a nil error; any other data must be
// valid JSON for T, and a decode error is returned wrapped with the topic
// name, so errors.As still finds the *json.SyntaxError or
// *json.UnmarshalTypeError. Serialize of a nil pointer, slice or map returns
// the JSON text null, not Kafka's null. The returned Serde is stateless and
// safe for concurrent use.
func JSON[T any]() Serde[T] {
	return jsonSerde[T]{}
}

type jsonSerde[T any] struct{}

// Serialize returns the JSON encoding of value.
func (jsonSerde[T]) Serialize(topic string, value T) ([]byte, error) {
	b, err := json.Marshal(value)
	if err != nil {
		return nil, fmt.Errorf("serde: JSON on topic %q: %w", topic, err)
	}
	return b, nil
}

// Deserialize decodes JSON data into a T; nil gives the zero T.
func (jsonSerde[T]) Deserialize(topic string, data []byte) (T, error) {
	var v T
	if data == nil {
		return v, nil
	}
	if err := json.Unmarshal(data, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("serde: JSON on topic %q: %w", topic, err)
	}
	return v, nil
}
