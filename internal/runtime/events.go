package runtime

import (
	"log/slog"

	"github.com/runnel-dev/runnel/stream/event"
	"github.com/runnel-dev/runnel/topology"
)

// loggingListener returns the listener that writes the operator logs of
// the runtime's events to log. Skipped records are logged where they are
// skipped, with the error.
func loggingListener(log *slog.Logger) event.Listener {
	return event.Listener{
		TasksAssigned: func(info event.TasksInfo) {
			log.Info("tasks assigned", "tasks", len(info.Tasks), "task_ids", taskNames(info.Tasks))
		},
		TasksRevoked: func(info event.TasksInfo) {
			log.Info("tasks closed", "tasks", len(info.Tasks), "task_ids", taskNames(info.Tasks), "lost", info.Lost)
		},
		RebalanceStart: func(info event.RebalanceInfo) { log.Debug("rebalance started", "reason", info.Reason) },
		RebalanceEnd:   func(event.RebalanceInfo) { log.Debug("rebalance ended") },
		Commit: func(info event.CommitInfo) {
			log.Debug("committed", "records", info.Records, "partitions", info.Partitions, "duration", info.Duration)
		},
		TransactionAbort: func(info event.AbortInfo) {
			log.Info("transaction aborted; the records since the last commit will be processed again", "reason", info.Reason)
		},
		RestoreStart: func(info event.RestoreInfo) {
			if info.FullReason != "" {
				log.Info("restoring store fully from its changelog", "task", info.Task.String(), "store", info.Store, "reason", info.FullReason,
					"topic", info.Topic, "partition", info.Partition, "records", info.EndOffset-info.StartOffset)
			}
		},
		RestoreSuspended: func(info event.RestoreInfo) {
			log.Info("restoration suspended: the task closed", "task", info.Task.String(), "store", info.Store, "topic", info.Topic,
				"partition", info.Partition, "records", info.Records)
		},
		RestoreEnd: func(info event.RestoreInfo) {
			secs := info.Duration.Seconds()
			log.Info("restored store", "task", info.Task.String(), "store", info.Store, "topic", info.Topic, "partition", info.Partition,
				"from", info.StartOffset, "to", info.EndOffset, "records", info.Records, "seconds", secs,
				"records_per_second", int64(float64(info.Records)/max(secs, 1e-9)))
		},
	}
}

// taskNames returns the names of ids ("0_1"), for logs.
func taskNames(ids []topology.TaskID) []string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = id.String()
	}
	return names
}
