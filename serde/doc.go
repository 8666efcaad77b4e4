// Package serde converts typed Go values to and from the bytes of Kafka record
// keys and values.
//
// A [Serde] is a pair of functions, Serialize and Deserialize, both given the
// topic the record belongs to. The built-ins are [String], [Bytes], [Int32],
// [Int64], [Float64] and [JSON]; [Func] builds a Serde from two functions.
// Every built-in is stateless and safe for concurrent use.
//
// # Wire compatibility
//
// The built-ins write the same bytes as Java's Kafka serdes, so topics can be
// shared with Kafka Streams applications:
//
//   - [String]: the UTF-8 bytes of the string (Serdes.String()).
//   - [Int32]: 4 bytes, big-endian two's complement (Serdes.Integer()).
//   - [Int64]: 8 bytes, big-endian two's complement (Serdes.Long()).
//   - [Float64]: the IEEE 754 bits, 8 bytes big-endian (Serdes.Double()).
//     Like Java's Double.doubleToLongBits, every NaN is written as the
//     canonical NaN 0x7ff8000000000000.
//   - [Bytes]: the bytes unchanged (Serdes.ByteArray()).
//
// # Null
//
// A nil byte slice is Kafka's null; as a record value it is a tombstone.
// Every built-in Deserialize maps nil data to the zero value of T and a nil
// error: 0 for numbers, "" for [String], the zero T for [JSON], and nil for
// [Bytes], so a null stays distinguishable from an empty value there. An empty
// but non-nil slice is not null: [String] decodes it to "", [Bytes] returns it
// as is, the numeric serdes reject it with [ErrSize], and [JSON] reports a
// decode error.
//
// Serialize never produces null from a built-in except [Bytes] given nil:
// String.Serialize("") returns an empty, non-nil slice (as Java's
// StringSerializer does), and JSON.Serialize of a nil pointer returns the
// JSON text null, not Kafka's null. Deciding when to write a tombstone is the
// caller's business, not the serde's.
//
// # Memory
//
// Serialize returns a slice the caller owns, except [Bytes], which returns its
// input. Deserialize does not retain data, except [Bytes], which returns data
// itself without copying.
package serde
