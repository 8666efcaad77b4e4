package stream

import "github.com/runnel-dev/runnel/topology"

// LogAndFail is the default error handler: the application logs the error
// and stops with it; the error names the task, node and the record's
// topic, partition and offset. The failing record is not committed as
// processed.
func LogAndFail(topology.ErrorContext, error) topology.HandlerResponse { return topology.Fail }

// LogAndContinue skips the failing record: it is logged at warn level with
// its topic, partition and offset and counted in
// runnel_records_skipped_total{reason}. A skipped input record
// (deserialization or processing) is also written to
// Config.DeadLetterQueueTopic when that is set; as the production handler,
// it drops the output record that Kafka refused.
func LogAndContinue(topology.ErrorContext, error) topology.HandlerResponse {
	return topology.Continue
}
