package runtime

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metrics are the runtime's Prometheus metrics. They are registered on the
// Registerer given to NewMetrics.
type Metrics struct {
	processed        prometheus.Counter
	skipped          *prometheus.CounterVec
	produced         prometheus.Counter
	productionErrors prometheus.Counter
	commits          prometheus.Counter
	tasks            prometheus.Gauge
}

// NewMetrics creates the metrics for one application and registers them on
// reg (a private registry when nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		processed: prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_records_processed_total",
			Help: "Input records processed (including skipped ones)."}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runnel_records_skipped_total",
			Help: "Records an error handler skipped, by reason: deserialization, processing, production."}, []string{"reason"}),
		produced: prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_records_produced_total",
			Help: "Records delivered to Kafka."}),
		productionErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_production_errors_total",
			Help: "Records that failed to produce."}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_commits_total",
			Help: "Successful commits."}),
		tasks: prometheus.NewGauge(prometheus.GaugeOpts{Name: "runnel_tasks",
			Help: "Tasks assigned to this instance."}),
	}
	reg.MustRegister(m.processed, m.skipped, m.produced, m.productionErrors, m.commits, m.tasks)
	return m
}

// Skipped returns how many records were skipped for the reason.
func (m *Metrics) Skipped(reason string) float64 {
	return counterValue(m.skipped.WithLabelValues(reason))
}

// Processed returns how many input records were processed.
func (m *Metrics) Processed() float64 { return counterValue(m.processed) }

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
