// Package streamtest runs a topology synchronously, with no Kafka broker, for
// unit tests of stream processing code: Runnel's counterpart of Kafka
// Streams' TopologyTestDriver, in the spirit of net/http/httptest.
//
// A Driver builds one task per subtopology of a topology, with every topic
// having a single partition (0). Test code writes records to input topics
// with an Input and reads what the topology produced with an Output:
//
//	d, err := streamtest.New(topo, streamtest.Config{})
//	defer d.Close()
//	in := streamtest.InputTopic(d, "text-input", serde.String, serde.String)
//	out := streamtest.OutputTopic(d, "words", serde.String, serde.String)
//	err = in.Pipe("k", "hello world")
//	recs, err := out.ReadAll()
//
// Pipe returns only when the record and everything it caused downstream has
// been processed: records a task writes to a topic that some subtopology
// reads (repartition topics, or a user topic read by another part of the
// topology) are fed back into that subtopology's task before Pipe returns.
// Errors the configured error handlers decide to fail on are returned by
// Pipe.
//
// Time is under the test's control. Each Input has its own record time,
// starting at Config.StartTime and moved with Input.Advance; stream time
// follows the timestamps of the processed records, so stream-time
// punctuators fire as records are piped. The wall clock starts at
// Config.StartTime too and moves only with Driver.AdvanceWallClock, which
// fires the wall-clock punctuators that become due.
//
// The driver uses the same task implementation as a running application, so
// operators, processors, punctuation and error handling behave as they do in
// production, minus Kafka: there are no commits, no rebalances, and every
// topic has one partition.
package streamtest
