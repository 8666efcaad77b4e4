package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"

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
			if src.Kind == topology.SourceKind {
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

// connect creates the group client (a transactional session under
// exactly-once) and its producer. The group may assign partitions as soon
// as the client exists; the assignment callback waits until both are set.
func (r *Runtime) connect(opts []kgo.Opt, bal *balancer) error {
	ready := make(chan struct{})
	r.callbackRuns() // none is pending on a new client
	opts = append(opts, kgo.OnPartitionsAssigned(func(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
		r.callbackRuns()
		bal.setOwned(assigned) // for sticky assignment at the next rebalance
		select {
		case <-ready:
		case <-ctx.Done():
			return
		}
		if r.assign(assigned) {
			r.notify(r.cfg.OnRunning) // outside r.mu: it calls user code
		}
	}))
	opts = append(opts, r.cfg.ClientOpts...)
	var err error
	if r.cfg.ExactlyOnce {
		if r.sess, err = kgo.NewGroupTransactSession(opts...); err == nil {
			r.cl = r.sess.Client()
			if err = r.sess.Begin(); err != nil {
				r.cl.Close()
			}
		}
	} else {
		r.cl, err = kgo.NewClient(opts...)
	}
	if err != nil {
		return fmt.Errorf("runtime: creating client: %w", err)
	}
	r.prod = &kafkaProducer{cl: r.cl, adm: r.adm, counts: map[string]int32{}, ctx: r.produceCtx, promise: r.onProduced,
		changelogs: r.changelogs, last: map[topicPartition]int64{}}
	r.takeTxnErr() // from the previous client's transaction
	r.mu.Lock()
	r.lastTxnOffsets, r.endTxn, r.rejoining = nil, false, false
	r.mu.Unlock()
	close(ready)
	return nil
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

// kgoLogger forwards franz-go's logs to slog.
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel {
	switch ctx := context.Background(); {
	case l.log.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelDebug
	case l.log.Enabled(ctx, slog.LevelInfo):
		return kgo.LogLevelInfo
	default:
		return kgo.LogLevelWarn
	}
}

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
