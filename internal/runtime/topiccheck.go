package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ErrPartitionMismatch is wrapped by the start-up error for an existing
// internal topic (changelog or repartition) whose partition count differs
// from the one the topology needs.
var ErrPartitionMismatch = errors.New("stream: internal topic has the wrong number of partitions")

// internalTopicNames returns the full names of the topology's internal
// topics. prepareTopics lists them along with the source and sink topics,
// so that it checks the existing ones instead of creating them again:
// changelog topics appear in no node.
func (r *Runtime) internalTopicNames() []string {
	var names []string
	for _, it := range r.cfg.Topology.InternalTopics() {
		names = append(names, r.topicName(it.Name))
	}
	return names
}

// partitionMismatch returns the start-up error for an existing internal
// topic with have partitions where the topology needs want.
func partitionMismatch(topic string, have, want int32) error {
	return fmt.Errorf("%w: %q has %d partitions, the topology needs %d (the partition count of its source topics changed?): "+
		"reset the application (delete its internal topics and its group's committed offsets) to start over with the new count",
		ErrPartitionMismatch, topic, have, want)
}

// checkRacedInternalTopic checks the partition count of an internal topic
// that another instance created between prepareTopics' listing and its own
// creation attempt. The topic may not be in the cluster's metadata yet:
// it retries while the topic is unknown, for up to 15s.
func (r *Runtime) checkRacedInternalTopic(ctx context.Context, topic string, want int32) error {
	reqCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var tds kadm.TopicDetails
	var err error
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		tds, err = r.adm.ListTopics(reqCtx, topic)
		if err == nil {
			err = tds[topic].Err
		}
		if !errors.Is(err, kerr.UnknownTopicOrPartition) {
			break
		}
		select {
		case <-reqCtx.Done():
		case <-time.After(backoff):
			continue
		}
		break
	}
	if err != nil {
		return fmt.Errorf("stream: listing internal topic %q: %w", topic, err)
	}
	if have := int32(len(tds[topic].Partitions)); have != want {
		return partitionMismatch(topic, have, want)
	}
	r.log.Info("internal topic created by another instance", "topic", topic, "partitions", want)
	return nil
}
