package runtime

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/stream/event"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaProducer implements Producer on a franz-go client. Delivery results
// arrive on franz-go's goroutines and go to promise.
type kafkaProducer struct {
	cl      *kgo.Client
	adm     *kadm.Client
	promise func(*kgo.Record, error)
	mu      sync.Mutex
	counts  map[string]int32 // partition counts by topic; guarded by mu
	// changelogs holds the full names of the changelog topics, whose
	// acknowledged offsets are kept in last (guarded by mu) for the
	// stores' checkpoints.
	changelogs map[string]bool
	last       map[topicPartition]int64
	// sent counts the records sent since the runtime last reset it (the
	// start of the transaction, under exactly-once).
	sent atomic.Int64
	// ctx bounds Produce (which blocks while the buffer is full) and the
	// partition count look-ups.
	ctx context.Context
}

var _ Producer = (*kafkaProducer)(nil)

func (p *kafkaProducer) Send(rec graph.OutRecord) error {
	p.sent.Add(1)
	promise := p.promise
	if p.changelogs[rec.Topic] {
		promise = p.changelogPromise
	}
	p.cl.Produce(p.ctx, newKafkaRecord(p.ctx, rec), promise)
	return nil
}

// changelogPromise remembers the offset of an acknowledged changelog
// record before the usual delivery handling.
func (p *kafkaProducer) changelogPromise(rec *kgo.Record, err error) {
	if err == nil {
		tp := topicPartition{rec.Topic, rec.Partition}
		p.mu.Lock()
		if last, ok := p.last[tp]; !ok || rec.Offset > last {
			p.last[tp] = rec.Offset
		}
		p.mu.Unlock()
	}
	p.promise(rec, err)
}

// LastOffset implements Producer.
func (p *kafkaProducer) LastOffset(topic string, partition int32) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o, ok := p.last[topicPartition{topic, partition}]
	return o, ok
}

func (p *kafkaProducer) PartitionCount(topic string) (int32, error) {
	p.mu.Lock()
	n, ok := p.counts[topic]
	p.mu.Unlock()
	if ok {
		return n, nil
	}
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	tds, err := p.adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("stream: partition count of %q: %w", topic, err)
	}
	td := tds[topic]
	if td.Err != nil {
		return 0, fmt.Errorf("stream: partition count of %q: %w", topic, td.Err)
	}
	n = int32(len(td.Partitions))
	p.mu.Lock()
	p.counts[topic] = n
	p.mu.Unlock()
	return n, nil
}

// partitioner sends records with a partition set (>= 0) there, and hashes
// the others as Kafka's default partitioner does (murmur2 of the key,
// sticky for null keys).
type partitioner struct{ hash kgo.Partitioner }

func newPartitioner() kgo.Partitioner { return partitioner{hash: kgo.StickyKeyPartitioner(nil)} }

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	return &topicPartitioner{hash: p.hash.ForTopic(topic)}
}

type topicPartitioner struct{ hash kgo.TopicPartitioner }

func (tp *topicPartitioner) RequiresConsistency(r *kgo.Record) bool { return true }

func (tp *topicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Partition >= 0 {
		return int(r.Partition)
	}
	return tp.hash.Partition(r, n)
}

// OnNewBatch lets the sticky partitioning of null-key records move on.
func (tp *topicPartitioner) OnNewBatch() {
	if nb, ok := tp.hash.(kgo.TopicPartitionerOnNewBatch); ok {
		nb.OnNewBatch()
	}
}

// onProduced is the delivery callback of every produced record.
func (r *Runtime) onProduced(rec *kgo.Record, err error) {
	if err == nil {
		r.cfg.Metrics.produced.Inc()
		return
	}
	r.cfg.Metrics.productionErrors.Inc()
	ectx := errorContext(topology.TaskID{}, "", topology.RecordMetadata{Topic: rec.Topic, Partition: rec.Partition, Offset: -1}, true, 0, rec)
	err = produceError(rec, err)
	if r.txn != nil && endsTransaction(err) {
		// Not the record's fault: the transaction fails as a whole and
		// is aborted at the next commit, which processes its records
		// again.
		r.txn.setErr(err)
		return
	}
	if r.changelogs[rec.Topic] {
		// A lost changelog record would lose state on the next restore:
		// never skipped, whatever the handler says.
		r.fail(err)
		return
	}
	if r.cfg.OnProductionError != nil && r.cfg.OnProductionError(ectx, err) == topology.Continue {
		r.log.Warn("dropping record that failed to produce", "topic", rec.Topic, "err", err)
		r.events.RecordSkipped(event.SkipInfo{Reason: "production", Topic: rec.Topic, Partition: rec.Partition, Offset: -1, Valid: true, Err: err})
		return
	}
	r.fail(err)
}
