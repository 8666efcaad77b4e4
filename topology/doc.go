// Package topology holds a built processing graph as users see it
// ([Topology], with Describe and Mermaid), the Processor API and the error
// types that error handlers receive.
//
// Most users never build a Topology by hand: package stream compiles its
// typed DSL into one. They meet this package through Describe and through
// the Processor API, which runs a user [Processor] on every record of a
// stream:
//
//	upper := stream.Process(events, func() topology.Processor[string, string, string, string] {
//		return &topology.ProcessorFuncs[string, string, string, string]{
//			OnProcess: func(ctx topology.ProcessorContext[string, string], rec topology.Record[string, string]) error {
//				rec.Value = strings.ToUpper(rec.Value)
//				return ctx.Forward(rec)
//			},
//		}
//	})
//
// # Topology and Describe
//
// A [Topology] is a set of nodes — sources that read topics, processors, and
// sinks that write topics — split into subtopologies (connected components)
// at repartition topics. Each subtopology runs as one task per input
// partition; a task owns an instance of every node of its subtopology and
// runs them on one goroutine, so processors need no locks.
//
// A Topology is immutable. [Topology.Describe] prints it in the shape of
// Kafka Streams' TopologyDescription, so its documentation and tooling
// habits carry over, and [Topology.Mermaid] draws it as a flowchart.
// [OffsetReset] says where a source starts reading a partition with no
// committed offset (stream.WithOffsetReset).
//
// # The Processor API
//
// A [Processor] gets Init once before its first record, Process for every
// record and Close when its task closes. Its [ProcessorContext] forwards
// [Record] values to the processor's children ([ProcessorContext.Forward],
// or one child by name with [ProcessorContext.ForwardTo]), and reaches the
// task: the input record's [RecordMetadata], the stream time and wall-clock
// time, punctuation, early commits ([ProcessorContext.Commit]) and the state
// stores the processor is connected to ([ProcessorContext.Store]).
//
// A Record carries its key, value, timestamp (milliseconds since the Unix
// epoch) and [Header] values; its Tombstone mark says its value is null.
// [ProcessorFuncs] builds a Processor from functions. The supplier that
// creates processors is called once per task and must return a new
// instance each time.
//
// # Punctuation
//
// [ProcessorContext.Schedule] calls a [Punctuator] every interval on one of
// two clocks, as Kafka Streams does:
//
//   - [StreamTime]: the largest record timestamp the task has processed.
//     Punctuators are aligned to multiples of the interval: they fire with
//     the first record, then at the first record of each later interval;
//     missed intervals are skipped, not replayed, and nothing fires while no
//     records arrive.
//   - [WallClockTime]: the system clock (the test driver's clock in
//     streamtest). Punctuators fire every interval from when they were
//     scheduled, whether or not records arrive.
//
// A punctuator runs on the task's goroutine, between records, and may use
// stores and forward records (except under stream.ProcessValues); [Cancellable.Cancel] stops it. An error it
// returns is a processing error.
//
// # Error types
//
// The runtime hands failing records to the application's error handlers
// ([ErrorHandler], answering [Fail] or [Continue]) with an [ErrorContext]
// describing the record:
//
//   - [*DeserializationError]: a source could not decode a key or value.
//   - [*ProcessingError]: user code or an operator returned an error or
//     panicked ([ErrPanic]) while processing or punctuating.
//
// Both name the node and locate the record (topic, partition, offset) and
// unwrap to the underlying error, so errors.As and errors.Is work on what
// stream.App.Run returns. Build-time problems are [*NodeError] values naming
// the node, all matching [ErrInvalid].
package topology
