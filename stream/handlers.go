package stream

import "github.com/runnel-dev/runnel/topology"

// LogAndFail is the default error handler: the application stops with the
// error, which names the task, node and the record's topic, partition and
// offset. The failing record is not committed as processed.
func LogAndFail(topology.ErrorContext, error) topology.HandlerResponse { return topology.Fail }

// LogAndContinue skips the failing record: it is logged at warn level with
// its topic, partition and offset, counted in the skipped-records metric,
// and written to Config.DeadLetterQueueTopic when that is set.
func LogAndContinue(topology.ErrorContext, error) topology.HandlerResponse {
	return topology.Continue
}
