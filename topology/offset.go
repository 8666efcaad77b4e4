package topology

// OffsetReset says where a source starts reading a partition that has no
// committed offset. The default is Earliest, as in Kafka Streams.
type OffsetReset int

const (
	// Earliest starts at the first available offset.
	Earliest OffsetReset = iota
	// Latest starts at the end, skipping existing records.
	Latest
)

// String returns "earliest" or "latest".
func (o OffsetReset) String() string {
	if o == Latest {
		return "latest"
	}
	return "earliest"
}
