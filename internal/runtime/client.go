package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"time"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/stream/event"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kgo"
)

// subscription returns the topics (or patterns) to subscribe to and a
// function mapping a full topic name to the sub-topology that reads it.
func (r *Runtime) subscription() (topics []string, subOf func(string) (int, bool)) {
	t := r.cfg.Topology
	hasPattern := false
	for _, src := range t.Nodes() {
		if src.Pattern != nil {
			hasPattern = true
			topics = append(topics, src.Pattern.String())
		}
		for _, name := range src.Topics {
			if src.Kind == graph.SourceKind {
				topics = append(topics, r.topicName(name))
			}
		}
	}
	if hasPattern { // kgo then treats every topic as a regex
		for i, topic := range topics {
			if t.SourceFor(r.cfg.AppID, topic) != nil {
				topics[i] = "^" + regexp.QuoteMeta(topic) + "$"
			}
		}
	}
	return topics, func(topic string) (int, bool) {
		if n := t.SourceFor(r.cfg.AppID, topic); n != nil {
			return t.SubtopologyOf(n.Name), true
		}
		return 0, false
	}
}

// clientOpts returns the options of a franz-go client of the runtime:
// the seed brokers and the logger, then opts, then the user's ClientOpts
// (last, so they can override). Every client the runtime creates (the
// group member, the admin client, the restore consumers) gets its options
// here.
func (r *Runtime) clientOpts(opts ...kgo.Opt) []kgo.Opt {
	all := []kgo.Opt{kgo.SeedBrokers(r.cfg.Brokers...), kgo.WithLogger(kgoLogger{r.log, r.cfg.ClientLogLevel})}
	all = append(all, opts...)
	return append(all, r.cfg.ClientOpts...)
}

// groupOpts returns the options of the group member: the consumer of
// topics (patterns when the topology has pattern sources), with the group
// callbacks, and the producer, transactional when txnID is set.
func (r *Runtime) groupOpts(topics []string, bal *balancer, txnID string, onAssigned func(context.Context, *kgo.Client, map[string][]int32)) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.ConsumerGroup(r.cfg.AppID),
		kgo.ConsumeTopics(topics...),
		kgo.Balancers(bal),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(r.onRevoked),
		kgo.OnPartitionsLost(r.onLost),
		kgo.RecordPartitioner(newPartitioner()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(r.applyOffsetResets),
		kgo.MetadataMinAge(time.Second),
		// Kafka's fetch.max.wait.ms default, which Kafka Streams keeps;
		// franz-go's 5s would hold back a resumed partition that long
		// when the broker's other partitions are idle (waitForRoom).
		kgo.FetchMaxWait(500 * time.Millisecond),
		// No kgo.RecordDeliveryTimeout: franz-go counts it from the
		// record's timestamp, which is the input's (often older) event
		// time here. Undeliverable records are retried; shutdown bounds
		// the wait with closeTimeout.
	}
	if slices.ContainsFunc(r.cfg.Topology.Nodes(), func(n *graph.Node) bool { return n.Pattern != nil }) {
		opts = append(opts, kgo.ConsumeRegex())
	}
	if txnID != "" {
		opts = append(opts, kgo.TransactionalID(txnID), kgo.TransactionTimeout(r.cfg.TransactionTimeout),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.OnPartitionsCallbackBlocked(r.txn.callbackBlocked))
	}
	opts = append(opts, kgo.OnPartitionsAssigned(onAssigned))
	return r.clientOpts(opts...)
}

// newAdminClient returns the client behind r.adm. It learns about the
// internal topics it creates; a short metadata age lets it find them soon
// after.
func (r *Runtime) newAdminClient() (*kgo.Client, error) {
	cl, err := kgo.NewClient(r.clientOpts(kgo.MetadataMinAge(250*time.Millisecond), kgo.WithHooks(&r.auth))...)
	if err != nil {
		return nil, fmt.Errorf("stream: creating admin client: %w", err)
	}
	return cl, nil
}

// newRestoreConsumer returns a consumer of one changelog partition from
// offset from, outside the group, reading committed records only.
func (r *Runtime) newRestoreConsumer(topic string, partition int32, from int64) (*kgo.Client, error) {
	cl, err := kgo.NewClient(r.clientOpts(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records (transaction markers) take offsets too: seeing
		// them tells when end is reached after a commit marker.
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(64<<20),
		kgo.FetchMaxPartitionBytes(32<<20),
	)...)
	if err != nil {
		return nil, fmt.Errorf("creating restore consumer: %w", err)
	}
	return cl, nil
}

// connect creates the group client (a transactional session under
// exactly-once, whose id is txnID) and its producer. The group may assign
// partitions as soon as the client exists; the assignment callback waits
// until both are set.
func (r *Runtime) connect(topics []string, bal *balancer, txnID string) error {
	ready := make(chan struct{})
	r.callbackRuns() // none is pending on a new client
	opts := r.groupOpts(topics, bal, txnID, func(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
		r.callbackRuns()
		bal.setOwned(assigned) // for sticky assignment at the next rebalance
		select {
		case <-ready:
		case <-ctx.Done():
			return
		}
		if r.assign(assigned) {
			r.events.RebalanceEnd(event.RebalanceInfo{}) // outside r.mu: it calls user code
		}
	})
	var sess *kgo.GroupTransactSession
	var err error
	if r.txn != nil {
		if sess, err = kgo.NewGroupTransactSession(opts...); err == nil {
			r.cl = sess.Client()
			if err = sess.Begin(); err != nil {
				r.cl.Close()
			}
		}
	} else {
		r.cl, err = kgo.NewClient(opts...)
	}
	if err != nil {
		return fmt.Errorf("stream: creating client: %w", err)
	}
	r.prod = &kafkaProducer{cl: r.cl, adm: r.adm, counts: map[string]int32{}, ctx: r.produceCtx, promise: r.onProduced,
		changelogs: r.changelogs, last: map[topicPartition]int64{}}
	r.mu.Lock()
	if r.txn != nil {
		r.txn.resetLocked(sess) // forgets the previous client's transaction
	}
	r.mu.rejoining = false
	r.mu.Unlock()
	close(ready)
	return nil
}

// callbackRuns tells the transaction session that a rebalance callback
// runs (see txnSession.callbackBlocked).
func (r *Runtime) callbackRuns() {
	if r.txn != nil {
		r.txn.callbackRuns()
	}
}

// applyOffsetResets starts partitions without a committed offset where
// their source's reset policy says: franz-go has one reset policy per
// client (earliest here), so sources with topology.Latest are moved to the
// end. Partitions with a committed offset are left alone.
func (r *Runtime) applyOffsetResets(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	for topic, ps := range offsets {
		n := r.cfg.Topology.SourceFor(r.cfg.AppID, topic)
		if n == nil || n.Reset != topology.Latest {
			continue
		}
		for p, o := range ps {
			if o.EpochOffset().Offset < 0 { // the reset sentinel: nothing committed
				ps[p] = kgo.NewOffset().AtEnd()
			}
		}
	}
	return offsets, nil
}

// kgoLogger forwards franz-go's logs to slog, those below min aside:
// franz-go logs every commit's flush at info, which would drown Runnel's
// own logs.
type kgoLogger struct {
	log *slog.Logger
	min slog.Level
}

// Level implements kgo.Logger: the most verbose level both min and the
// logger let through.
func (l kgoLogger) Level() kgo.LogLevel {
	switch ctx := context.Background(); {
	case l.min <= slog.LevelDebug && l.log.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelDebug
	case l.min <= slog.LevelInfo && l.log.Enabled(ctx, slog.LevelInfo):
		return kgo.LogLevelInfo
	case l.min <= slog.LevelWarn:
		return kgo.LogLevelWarn
	default:
		return kgo.LogLevelError
	}
}

// Log implements kgo.Logger.
func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lvl = slog.LevelError
	case kgo.LogLevelWarn:
		lvl = slog.LevelWarn
	case kgo.LogLevelInfo:
		lvl = slog.LevelInfo
	}
	l.log.Log(context.Background(), lvl, "kafka client: "+msg, keyvals...)
}
