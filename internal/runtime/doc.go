// Package runtime runs topologies: tasks, the poll and dispatch loop, the
// commit protocol, the group balancer and internal topic management.
//
// A Runtime is one member of the application's consumer group; Run is its
// whole lifecycle. Its methods are split by responsibility:
//
//   - runtime.go: Config, the Runtime type, Run and shutdown
//   - client.go: every franz-go client's options, connecting to the group
//   - topics.go: checking and creating topics at start
//   - poll.go: the poll loop and dispatch to the tasks
//   - flow.go: backpressure (waiting for room, pausing full tasks)
//   - commit.go: the commit barrier and offset commits (at-least-once)
//   - txn.go: the transaction session (exactly-once)
//   - rebalance.go: the group callbacks, opening and closing tasks
//   - housekeeping.go: purging repartition topics, cleaning unowned state
//   - producer.go: the producer and its delivery callback
//   - events.go, metrics.go: the logging and metrics event listeners
//   - worker.go: the goroutine that owns a task
//   - task.go, errors.go, stores.go, restore.go, punctuate.go: a task
//     (processing, error routing, stores, restoration, punctuation)
//   - changelog.go: reading changelogs from Kafka for restoration
//
// # Goroutines and locks
//
// Four kinds of goroutines call into a Runtime:
//
//   - Run's goroutine (the caller of Run) owns the group client: it
//     connects, runs the poll loop (poll, dispatch, waitForRoom), commits
//     (commitLocked, commitTransactionLocked), does the housekeeping
//     (purgeRepartitionTopics, cleanState) and shuts down (shutdown).
//   - franz-go's group goroutine calls the rebalance callbacks (assign
//     through OnPartitionsAssigned, onRevoked, onLost) and
//     txnSession.callbackBlocked. With kgo.BlockRebalanceOnPoll the
//     callbacks run only between AllowRebalance and the next poll, and
//     every commit is preceded by blockRebalances, so a commit and a
//     callback never run at the same time.
//   - franz-go's produce goroutines call the delivery callbacks
//     (onProduced, kafkaProducer.changelogPromise), which fail the
//     runtime or doom the open transaction (txnSession.setErr).
//   - One worker goroutine per task (worker.run), started by assignLocked
//     and stopped and waited for by closeWorkersLocked, owns its Task:
//     restoration, Init, processing and wall-clock punctuation. The task
//     and its stores need no lock; the committer holds worker.mu to keep
//     the worker between records.
//
// Shutdown timers (time.AfterFunc in shutdown and callbackBlocked) only
// cancel contexts.
//
// Locks are taken in this order, never the reverse:
//
//	Runtime.mu → worker.mu → worker.inbox
//	Runtime.mu → worker.flow
//	Runtime.mu → txnSession.mu
//
// Runtime.mu guards the tasks (its workers map and each worker's
// partitions) and serializes commits with the group callbacks; methods
// that need it held end in Locked. worker.flow is also taken by its
// worker alone (drained), txnSession.mu and kafkaProducer.mu by the
// produce goroutines alone: they are leaves, held for a few instructions.
// blockRebalances waits for a rebalance in progress, whose callbacks take
// Runtime.mu, so it must be called without Runtime.mu held. The event
// listener (Config.Events, teed with the metrics and the logs in
// events.go) is called where events happen, with Runtime.mu held for
// assignment, revocation and commits: its functions must not block or
// call back into the runtime. RebalanceStart and RebalanceEnd, which
// drive the App's state listener, are called with no lock held, as are
// the error handlers of production errors.
package runtime
