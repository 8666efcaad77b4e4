package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ErrTopicMissing is wrapped by the start-up error for a source or sink
// topic that does not exist.
var ErrTopicMissing = errors.New("stream: topic does not exist")

// ErrNotCopartitioned is wrapped by the start-up error for source topics of
// one sub-topology with different partition counts.
var ErrNotCopartitioned = errors.New("stream: topics are not co-partitioned")

// prepareTopics checks that the topology's source and sink topics exist and
// that each sub-topology's source topics are co-partitioned, and creates the
// internal topics (or checks existing ones). It retries while the cluster
// cannot be reached, logging a warning each time, until ctx is done.
func (r *Runtime) prepareTopics(ctx context.Context) error {
	tds, err := r.describeTopics(ctx)
	if err != nil {
		return err
	}
	counts := topicCounts(tds)
	if err := r.checkExternalTopics(counts); err != nil {
		return err
	}
	want := partitionCounts{t: r.cfg.Topology, have: counts, want: map[string]int32{}}
	if err := r.createInternalTopics(ctx, want); err != nil {
		return err
	}
	return r.checkCopartitioning(want)
}

// describeTopics returns the details of every topic the topology and the
// dead-letter queue name, retrying while the cluster cannot be reached.
func (r *Runtime) describeTopics(ctx context.Context) (kadm.TopicDetails, error) {
	var names []string
	for _, n := range r.cfg.Topology.Nodes() {
		for _, topic := range n.Topics {
			names = append(names, r.topicName(topic))
		}
	}
	if r.cfg.DeadLetterTopic != "" {
		names = append(names, r.cfg.DeadLetterTopic)
	}
	names = append(names, r.internalTopicNames()...)
	slices.Sort(names)
	names = slices.Compact(names)
	for backoff := 250 * time.Millisecond; ; backoff = min(2*backoff, 10*time.Second) {
		reqCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
		tds, err := r.adm.ListTopics(reqCtx, names...)
		cancel()
		if err == nil {
			return tds, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if aerr := r.accessError(ctx, names, err); aerr != nil {
			return nil, aerr
		}
		r.log.Warn("cannot reach the Kafka cluster, retrying", "brokers", r.cfg.Brokers, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// topicCounts returns the partition count of each existing topic of tds.
func topicCounts(tds kadm.TopicDetails) map[string]int32 {
	counts := map[string]int32{}
	for topic, td := range tds {
		if td.Err == nil {
			counts[topic] = int32(len(td.Partitions))
		}
	}
	return counts
}

// checkExternalTopics reports every source, sink and dead-letter topic
// missing from counts.
func (r *Runtime) checkExternalTopics(counts map[string]int32) error {
	t := r.cfg.Topology
	var errs []error
	for _, n := range t.Nodes() {
		for _, topic := range n.Topics {
			if _, internal := t.InternalTopic(topic); internal {
				continue
			}
			if _, ok := counts[topic]; !ok {
				role := "source"
				if n.Kind == graph.SinkKind {
					role = "sink"
				}
				errs = append(errs, fmt.Errorf("%w: %s topic %q of node %q; create it before starting the application (only internal topics are created automatically)", ErrTopicMissing, role, topic, n.Name))
			}
		}
	}
	if dlq := r.cfg.DeadLetterTopic; dlq != "" {
		if _, ok := counts[dlq]; !ok {
			errs = append(errs, fmt.Errorf("%w: dead-letter queue topic %q; create it before starting the application", ErrTopicMissing, dlq))
		}
	}
	return errors.Join(errs...)
}

// partitionCounts derives the partition counts of internal topics:
// explicit, or the largest source topic count of the sub-topologies that
// write them (resolved in dependency order, since a writer may itself read
// an internal topic).
type partitionCounts struct {
	t    *graph.Graph
	have map[string]int32 // existing topics (full names)
	want map[string]int32 // resolved internal topics (topology names)
}

// of returns the partition count of topic (its topology name): the
// existing count for external topics, the derived one for internal topics.
func (c partitionCounts) of(topic string) (int32, error) { return c.resolve(topic, 0) }

func (c partitionCounts) resolve(topic string, depth int) (int32, error) {
	if n, ok := c.want[topic]; ok {
		return n, nil
	}
	it, internal := c.t.InternalTopic(topic)
	if !internal {
		return c.have[topic], nil
	}
	if it.Partitions > 0 {
		c.want[topic] = it.Partitions
		return it.Partitions, nil
	}
	if depth > len(c.t.Subtopologies()) {
		return 0, fmt.Errorf("stream: cannot derive the partition count of internal topic %q (cycle)", topic)
	}
	var n int32
	for _, sub := range c.t.Writers(topic) {
		for _, src := range c.t.Subtopologies()[sub].SourceTopics() {
			m, err := c.resolve(src, depth+1)
			if err != nil {
				return 0, err
			}
			n = max(n, m)
		}
	}
	if n == 0 {
		n = 1 // written only by pattern sources: one partition until we know better
	}
	c.want[topic] = n
	return n, nil
}

// createInternalTopics creates the internal topics that do not exist, and
// checks the partition count of those that do.
func (r *Runtime) createInternalTopics(ctx context.Context, counts partitionCounts) error {
	for _, it := range r.cfg.Topology.InternalTopics() {
		n, err := counts.of(it.Name)
		if err != nil {
			return err
		}
		full := r.topicName(it.Name)
		if have, ok := counts.have[full]; ok {
			if have != n {
				return partitionMismatch(full, have, n)
			}
			continue
		}
		resp, err := r.adm.CreateTopic(ctx, n, -1, internalTopicConfigs(it), full)
		if err == nil {
			err = resp.Err
		}
		if errors.Is(err, kerr.TopicAlreadyExists) {
			if err := r.checkRacedInternalTopic(ctx, full, n); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("stream: creating internal topic %q: %w", full, err)
		}
		r.log.Info("created internal topic", "topic", full, "partitions", n)
	}
	return nil
}

// internalTopicConfigs returns the topic configs an internal topic is
// created with: its own, and those of its kind.
func internalTopicConfigs(it graph.InternalTopic) map[string]*string {
	configs := map[string]*string{}
	for k, v := range it.Configs {
		configs[k] = &v
	}
	switch it.Kind {
	case graph.Changelog:
		configs["cleanup.policy"] = ptr("compact")
	case graph.Repartition:
		// Kafka Streams' repartition topic defaults: records are
		// deleted once consumed (purgeRepartitionTopics), never by age.
		if _, set := configs["retention.ms"]; !set {
			configs["retention.ms"] = ptr("-1")
		}
	}
	return configs
}

// checkCopartitioning reports a sub-topology whose source topics have
// different partition counts.
func (r *Runtime) checkCopartitioning(counts partitionCounts) error {
	for _, sub := range r.cfg.Topology.Subtopologies() {
		srcs := sub.SourceTopics()
		have := map[string]int32{}
		for _, src := range srcs {
			n, err := counts.of(src)
			if err != nil {
				return err
			}
			have[src] = n
		}
		for _, src := range srcs[min(1, len(srcs)):] {
			if have[src] != have[srcs[0]] {
				desc := make([]string, 0, len(srcs))
				for _, s := range srcs {
					desc = append(desc, fmt.Sprintf("%s=%d", r.topicName(s), have[s]))
				}
				sort.Strings(desc)
				return fmt.Errorf("%w: sub-topology %d reads %v", ErrNotCopartitioned, sub.ID, desc)
			}
		}
	}
	return nil
}

func ptr(s string) *string { return &s }
