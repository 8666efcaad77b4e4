package serde

import (
	"encoding/binary"
	"math"
)

// The built-in serdes. They are stateless and safe for concurrent use; see the
// package documentation for their encodings and null handling.
var (
	// String encodes a string as its bytes, which are UTF-8 for valid Go
	// strings, like Java's Serdes.String(). Serialize("") returns an empty,
	// non-nil slice; Deserialize(nil) returns "". Serialize allocates a copy
	// of the string and Deserialize allocates the string only.
	String Serde[string] = stringSerde{}

	// Bytes passes byte slices through unchanged, like Java's
	// Serdes.ByteArray(). Serialize returns its input (nil stays nil) and
	// Deserialize returns data itself (nil stays nil, so a null is
	// distinguishable from an empty slice); neither copies. A caller that
	// got the slice from a shared buffer must not modify it, and must copy
	// it to keep it beyond the buffer's lifetime.
	Bytes Serde[[]byte] = bytesSerde{}

	// Int32 encodes an int32 as 4 big-endian bytes, like Java's
	// Serdes.Integer(). Deserialize(nil) returns 0; other data whose length
	// is not 4 is an error wrapping [ErrSize].
	Int32 Serde[int32] = int32Serde{}

	// Int64 encodes an int64 as 8 big-endian bytes, like Java's
	// Serdes.Long(). Deserialize(nil) returns 0; other data whose length is
	// not 8 is an error wrapping [ErrSize].
	Int64 Serde[int64] = int64Serde{}

	// Float64 encodes a float64 as its IEEE 754 bits in 8 big-endian bytes,
	// like Java's Serdes.Double(). As with Java's Double.doubleToLongBits,
	// every NaN is written as the canonical NaN 0x7ff8000000000000, so NaN
	// payloads do not survive a round trip. Deserialize keeps the bits it
	// reads. Deserialize(nil) returns 0; other data whose length is not 8 is
	// an error wrapping [ErrSize].
	Float64 Serde[float64] = float64Serde{}
)

// canonicalNaN is the bit pattern Java's Double.doubleToLongBits writes for
// every NaN.
const canonicalNaN = 0x7ff8000000000000

type stringSerde struct{}

// Serialize returns the bytes of value; "" gives an empty, non-nil slice.
func (stringSerde) Serialize(_ string, value string) ([]byte, error) {
	if value == "" {
		// []byte{} of length zero does not allocate.
		return []byte{}, nil
	}
	return []byte(value), nil
}

// Deserialize returns data as a string; nil gives "".
func (stringSerde) Deserialize(_ string, data []byte) (string, error) {
	return string(data), nil
}

type bytesSerde struct{}

// Serialize returns value unchanged.
func (bytesSerde) Serialize(_ string, value []byte) ([]byte, error) {
	return value, nil
}

// Deserialize returns data unchanged.
func (bytesSerde) Deserialize(_ string, data []byte) ([]byte, error) {
	return data, nil
}

type int32Serde struct{}

// Serialize returns value as 4 big-endian bytes.
func (int32Serde) Serialize(_ string, value int32) ([]byte, error) {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, uint32(value))
	return b, nil
}

// Deserialize decodes 4 big-endian bytes; nil gives 0.
func (int32Serde) Deserialize(topic string, data []byte) (int32, error) {
	if data == nil {
		return 0, nil
	}
	if len(data) != 4 {
		return 0, sizeError("Int32", topic, len(data), 4)
	}
	return int32(binary.BigEndian.Uint32(data)), nil
}

type int64Serde struct{}

// Serialize returns value as 8 big-endian bytes.
func (int64Serde) Serialize(_ string, value int64) ([]byte, error) {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(value))
	return b, nil
}

// Deserialize decodes 8 big-endian bytes; nil gives 0.
func (int64Serde) Deserialize(topic string, data []byte) (int64, error) {
	if data == nil {
		return 0, nil
	}
	if len(data) != 8 {
		return 0, sizeError("Int64", topic, len(data), 8)
	}
	return int64(binary.BigEndian.Uint64(data)), nil
}

type float64Serde struct{}

// Serialize returns the IEEE 754 bits of value as 8 big-endian bytes, with
// every NaN written as the canonical NaN.
func (float64Serde) Serialize(_ string, value float64) ([]byte, error) {
	bits := math.Float64bits(value)
	if math.IsNaN(value) {
		bits = canonicalNaN
	}
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, bits)
	return b, nil
}

// Deserialize decodes 8 big-endian bytes as IEEE 754 bits; nil gives 0.
func (float64Serde) Deserialize(topic string, data []byte) (float64, error) {
	if data == nil {
		return 0, nil
	}
	if len(data) != 8 {
		return 0, sizeError("Float64", topic, len(data), 8)
	}
	return math.Float64frombits(binary.BigEndian.Uint64(data)), nil
}
