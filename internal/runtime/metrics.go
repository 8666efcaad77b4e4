package runtime

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/runnel-dev/runnel/stream/event"
)

// Metrics are the runtime's Prometheus metrics. They are registered on the
// Registerer given to NewMetrics.
type Metrics struct {
	processed        prometheus.Counter
	skipped          *prometheus.CounterVec
	produced         prometheus.Counter
	productionErrors prometheus.Counter
	commits          prometheus.Counter
	aborts           prometheus.Counter
	tasks            prometheus.Gauge
	restored         prometheus.Counter
}

// NewMetrics creates the metrics of application appID (constant label
// app_id) and registers them on reg (a private registry when nil). It fails
// when reg already holds them, e.g. for a second App with the same id.
func NewMetrics(reg prometheus.Registerer, appID string) (*Metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"app_id": appID}, reg)
	m := &Metrics{
		processed: prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_records_processed_total",
			Help: "Input records processed (including skipped ones)."}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runnel_records_skipped_total",
			Help: "Records skipped, by reason: deserialization, processing, production (an error handler said continue), invalid_timestamp (negative extracted timestamp), null_key (null key reaching a grouping), null_value (tombstone reaching a stream aggregation)."}, []string{"reason"}),
		produced: prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_records_produced_total",
			Help: "Records delivered to Kafka."}),
		productionErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_production_errors_total",
			Help: "Records that failed to produce."}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_commits_total",
			Help: "Successful commits."}),
		aborts: prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_transactions_aborted_total",
			Help: "Transactions aborted (exactly-once): their records are processed again."}),
		tasks: prometheus.NewGauge(prometheus.GaugeOpts{Name: "runnel_tasks",
			Help: "Tasks assigned to this instance."}),
		restored: prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_restored_records_total",
			Help: "Changelog records applied to local state stores while restoring."}),
	}
	for _, c := range []prometheus.Collector{m.processed, m.skipped, m.produced, m.productionErrors, m.commits, m.aborts, m.tasks, m.restored} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics of %q: %w", appID, err)
		}
	}
	return m, nil
}

// listener returns the listener that keeps the metrics that count events
// (the per-record counters are kept directly on the hot path).
func (m *Metrics) listener() event.Listener {
	return event.Listener{
		TasksAssigned:    func(info event.TasksInfo) { m.tasks.Set(float64(len(info.Tasks))) },
		TasksRevoked:     func(event.TasksInfo) { m.tasks.Set(0) },
		Commit:           func(event.CommitInfo) { m.commits.Inc() },
		TransactionAbort: func(event.AbortInfo) { m.aborts.Inc() },
		RestoreProgress:  func(info event.RestoreInfo) { m.restored.Add(float64(info.Records)) },
		RecordSkipped:    func(info event.SkipInfo) { m.skipped.WithLabelValues(info.Reason).Inc() },
	}
}
