// Package streamtest runs a topology synchronously, with no Kafka broker, for
// unit tests of stream processing code: Runnel's counterpart of Kafka
// Streams' TopologyTestDriver, in the spirit of net/http/httptest.
//
// A test builds its topology, starts a [Driver] on it, writes records to input
// topics and reads what the topology produced:
//
//	func TestWords(t *testing.T) {
//		topo, err := buildTopology() // the application's own stream.Builder code
//		if err != nil {
//			t.Fatal(err)
//		}
//		d, err := streamtest.New(topo, streamtest.Config{})
//		if err != nil {
//			t.Fatal(err)
//		}
//		defer d.Close()
//		in := streamtest.InputTopic(d, "text-input", serde.String, serde.String)
//		out := streamtest.OutputTopic(d, "words", serde.String, serde.String)
//		if err := in.Pipe("k", "hello world"); err != nil {
//			t.Fatal(err)
//		}
//		recs, err := out.ReadAll()
//		if err != nil || len(recs) != 2 || recs[0].Value != "hello" {
//			t.Errorf("got %v, %v; want hello and world", recs, err)
//		}
//	}
//
// # Driver
//
// [New] builds one task per subtopology of a topology, every topic having a
// single partition (0), and runs the processors' Init. The driver uses the
// same task implementation as a running application, so operators,
// processors, punctuation, stores and error handling behave as they do in
// production, minus Kafka: there are no rebalances, and a commit (which
// flushes the record caches) follows every [Input.Pipe] and
// [Driver.AdvanceWallClock], as in Kafka Streams' driver, so a cached
// aggregation emits one update per key and call.
//
// Errors the configured error handlers decide to fail on (by default all of
// them) are returned by the call that processed the record, which is then
// dropped, so a test can check the error and go on; it is not counted as
// skipped. [Driver.SkippedRecords] counts the records handlers skipped, as
// the application's runnel_records_skipped_total metric does.
// [Config.DeadLetterQueueTopic] can be read like any output topic.
//
// # Input and output topics
//
// An [Input] ([InputTopic]) writes typed records to a topic: [Input.Pipe],
// [Input.PipeAt] with a timestamp, [Input.PipeRecord] with headers, and
// [Input.PipeRaw] with bytes the serdes would not produce. Pipe returns only
// when the record and everything it caused downstream has been processed:
// records a task writes to a topic that some subtopology reads (repartition
// topics, or a user topic read by another part of the topology) are fed back
// into that subtopology's task before Pipe returns.
//
// An [Output] ([OutputTopic]) reads what the topology wrote to a topic, in
// order, with [Output.ReadRecord], [Output.ReadKeyValue] and
// [Output.ReadAll]; reading consumes. Internal topics are named
// "<app-id>-<name>", with [Config.AppID] "streamtest" by default.
//
// # Stores
//
// Stores live in memory. [KeyValueStore] returns a store of the topology by
// name, to seed it before piping or to check its contents afterwards.
//
// # Clocks
//
// Time is under the test's control. Each Input has its own record time,
// starting at [Config.StartTime] and moved with [Input.Advance]; stream time
// follows the timestamps of the processed records, so stream-time
// punctuators fire as records are piped. The wall clock starts at
// Config.StartTime too and moves only with [Driver.AdvanceWallClock], which
// fires the wall-clock punctuators that become due, in time order.
package streamtest
