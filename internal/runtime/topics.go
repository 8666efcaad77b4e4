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
	t := r.cfg.Topology
	var names []string
	for _, n := range t.Nodes() {
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

	var tds kadm.TopicDetails
	for backoff := 250 * time.Millisecond; ; backoff = min(2*backoff, 10*time.Second) {
		var err error
		reqCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
		tds, err = r.adm.ListTopics(reqCtx, names...)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if aerr := r.accessError(ctx, names, err); aerr != nil {
			return aerr
		}
		r.log.Warn("cannot reach the Kafka cluster, retrying", "brokers", r.cfg.Brokers, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
	count := func(topic string) (int32, bool) {
		td, ok := tds[topic]
		if !ok || td.Err != nil {
			return 0, false
		}
		return int32(len(td.Partitions)), true
	}

	var errs []error
	for _, n := range t.Nodes() {
		for _, topic := range n.Topics {
			if _, internal := t.InternalTopic(topic); internal {
				continue
			}
			if _, ok := count(topic); !ok {
				role := "source"
				if n.Kind == graph.SinkKind {
					role = "sink"
				}
				errs = append(errs, fmt.Errorf("%w: %s topic %q of node %q", ErrTopicMissing, role, topic, n.Name))
			}
		}
	}
	if dlq := r.cfg.DeadLetterTopic; dlq != "" {
		if _, ok := count(dlq); !ok {
			errs = append(errs, fmt.Errorf("%w: dead-letter queue topic %q", ErrTopicMissing, dlq))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	// Partition counts of internal topics: explicit, or the largest source
	// topic count of the sub-topologies that write them (resolved in
	// dependency order, since a writer may itself read an internal topic).
	want := map[string]int32{}
	var resolve func(topic string, depth int) (int32, error)
	resolve = func(topic string, depth int) (int32, error) {
		if n, ok := want[topic]; ok {
			return n, nil
		}
		it, internal := t.InternalTopic(topic)
		if !internal {
			n, _ := count(topic)
			return n, nil
		}
		if it.Partitions > 0 {
			want[topic] = it.Partitions
			return it.Partitions, nil
		}
		if depth > len(t.Subtopologies()) {
			return 0, fmt.Errorf("stream: cannot derive the partition count of internal topic %q (cycle)", topic)
		}
		var n int32
		for _, sub := range t.Writers(topic) {
			for _, src := range t.Subtopologies()[sub].SourceTopics() {
				c, err := resolve(src, depth+1)
				if err != nil {
					return 0, err
				}
				n = max(n, c)
			}
		}
		if n == 0 {
			n = 1 // written only by pattern sources: one partition until we know better
		}
		want[topic] = n
		return n, nil
	}
	for _, it := range t.InternalTopics() {
		n, err := resolve(it.Name, 0)
		if err != nil {
			return err
		}
		full := r.topicName(it.Name)
		if have, ok := count(full); ok {
			if have != n {
				return partitionMismatch(full, have, n)
			}
			continue
		}
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
		resp, err := r.adm.CreateTopic(ctx, n, -1, configs, full)
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

	// Co-partitioning of each sub-topology's source topics.
	for _, sub := range t.Subtopologies() {
		srcs := sub.SourceTopics()
		counts := map[string]int32{}
		for _, src := range srcs {
			n, err := resolve(src, 0)
			if err != nil {
				return err
			}
			counts[src] = n
		}
		if len(srcs) > 1 {
			for _, src := range srcs[1:] {
				if counts[src] != counts[srcs[0]] {
					desc := make([]string, 0, len(srcs))
					for _, s := range srcs {
						desc = append(desc, fmt.Sprintf("%s=%d", r.topicName(s), counts[s]))
					}
					sort.Strings(desc)
					return fmt.Errorf("%w: sub-topology %d reads %v", ErrNotCopartitioned, sub.ID, desc)
				}
			}
		}
	}
	return nil
}

func ptr(s string) *string { return &s }
