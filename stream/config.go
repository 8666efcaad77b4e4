package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/internal/runtime"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/stream/event"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Guarantee is the processing guarantee.
type Guarantee int

const (
	// AtLeastOnce commits input offsets after the outputs they caused are
	// acknowledged, so a crash may reprocess (duplicate) but never lose
	// records. The default.
	AtLeastOnce Guarantee = iota
	// ExactlyOnce is Kafka's read-process-write transactions (KIP-447):
	// each commit puts the outputs, the state stores' changelog records
	// and the input offsets in one transaction, and local state is
	// updated only once it committed. See the README's "Exactly-once".
	ExactlyOnce
)

// String returns "at_least_once" or "exactly_once", Kafka Streams' names.
func (g Guarantee) String() string {
	switch g {
	case AtLeastOnce:
		return "at_least_once"
	case ExactlyOnce:
		return "exactly_once"
	}
	return fmt.Sprintf("Guarantee(%d)", int(g))
}

// ErrConfig is wrapped by every error NewApp returns for a bad Config; the
// message names the field.
var ErrConfig = errors.New("stream: invalid config")

// Config configures an App. Zero fields mean Kafka Streams' defaults; NewApp
// validates it once and names the offending field.
type Config struct {
	// AppID is the application id: the consumer group id and the prefix of
	// internal topics. Required; letters, digits, '.', '_' and '-'.
	// (Kafka Streams: application.id.)
	AppID string
	// Brokers are the bootstrap servers, "host:port". Required.
	// (bootstrap.servers.)
	Brokers []string
	// StateDir is where local state lives: one Pebble database per
	// instance in StateDir/AppID, locked while the App runs (a second
	// instance on the same directory fails at start with an error
	// matching state.ErrLocked). Default: os.TempDir()/runnel. Stateless
	// topologies do not use it. (state.dir.)
	StateDir string
	// StateFS is the file system of the state directory. Default: the
	// operating system's. Tests can pass vfs.NewMem(), or an errorfs
	// wrapper to inject disk failures.
	StateFS vfs.FS
	// CacheMaxBytes is the record cache budget of each task with cached
	// stores: they collapse consecutive updates of a key, so downstream
	// and the changelog see one update per key per commit (or eviction).
	// The budget counts keys, values and 128 bytes per entry (about Go's
	// real cost); an instance with N stateful tasks may use up to N times
	// it. Kafka Streams shares one budget among the tasks of a thread;
	// Runnel's tasks each run on their own goroutine, and a shared cache
	// would need a lock on the hot path. Default (0): 10 MiB. A negative
	// value disables caching, so every update is forwarded — Go's zero
	// value cannot mean both the default and "off".
	// (statestore.cache.max.bytes.)
	CacheMaxBytes int64
	// StateCleanupDelay is how long the local state of a task this
	// instance does not own (it moved to another instance, or the
	// topology changed) is kept before it is deleted; a task that comes
	// back within it restores only the changelog tail. Default 10 minutes;
	// negative keeps such state forever. (state.cleanup.delay.ms.)
	StateCleanupDelay time.Duration
	// RestoreListener, when set, is told when each store's restoration
	// starts, after each restored batch and when it ends. Its methods run
	// on the tasks' goroutines, concurrently. It may also implement the
	// optional state.RestoreSuspendedListener. (Kafka Streams'
	// StateRestoreListener.)
	RestoreListener state.RestoreListener
	// EnsureExplicitInternalResourceNaming makes NewApp fail when a state
	// store, changelog or repartition topic has a generated name: adding an
	// operator upstream would renumber it and silently orphan its state.
	// Name them with Materialized and Named. Default false.
	// (ensure.explicit.internal.resource.naming, KIP-1111.)
	EnsureExplicitInternalResourceNaming bool
	// Guarantee is the processing guarantee. Default AtLeastOnce.
	// (processing.guarantee.)
	Guarantee Guarantee
	// CommitInterval is how often offsets are committed (and, under
	// ExactlyOnce, transactions). Default 30s under AtLeastOnce, 100ms
	// under ExactlyOnce: output becomes visible to read_committed
	// consumers only at a commit. (commit.interval.ms.)
	CommitInterval time.Duration
	// InstanceID names this instance among the application's instances:
	// under ExactlyOnce its transactional id is "<AppID>-<InstanceID>".
	// Each running instance needs its own: two with the same id fence
	// each other's transactions. Default: an id generated on first start
	// and kept next to the state directory (StateDir/AppID.instance-id),
	// which is locked while the instance runs, so an instance restarted on
	// the same directory keeps its id and at once aborts the transaction
	// its previous run left open. Letters, digits, '.', '_' and '-'.
	InstanceID string
	// TransactionTimeout is how long a transaction may stay open before
	// the broker aborts it (ExactlyOnce): after a crash, the partitions
	// the crashed instance wrote to are blocked for read_committed readers
	// until its transaction is aborted, by its own restart or by this
	// timeout. Must be longer than CommitInterval. Default 10s, as Kafka
	// Streams sets under exactly-once. (transaction.timeout.ms.)
	TransactionTimeout time.Duration
	// StateStoreUncommittedMaxBytes bounds the state writes a task holds
	// in memory between commits (its Pebble batch): past it the task asks
	// for an early commit. Default 64 MiB.
	// (statestore.uncommitted.max.bytes, KIP-892.)
	StateStoreUncommittedMaxBytes int64
	// ClientOpts are extra franz-go options appended to Runnel's own for
	// every client, e.g. kgo.SASL, kgo.DialTLSConfig, kgo.ProducerLinger.
	// Options that change group membership, consumed topics, offset
	// commits or partitioning break the runtime's guarantees.
	ClientOpts []kgo.Opt
	// Logger receives structured logs (app, task, topic, partition fields):
	// tasks assigned and closed, restorations and state changes at info,
	// commits at debug, skipped records and failures at warn and error.
	// Default slog.Default().
	Logger *slog.Logger
	// KafkaClientLogLevel is the least severe level of franz-go's own logs
	// passed on to Logger (which still filters by its own level): set
	// slog.LevelInfo or slog.LevelDebug to see the client's connections,
	// group protocol and per-commit flushes. Default (nil):
	// slog.LevelWarn, because franz-go logs every commit's flush at info,
	// which drowns Runnel's own logs.
	KafkaClientLogLevel slog.Leveler
	// EventListener, when set, is told about the application's events:
	// tasks assigned and revoked, rebalances, commits, aborted
	// transactions, restoration, skipped records and state changes (see
	// package event). Its functions run synchronously on the goroutine
	// where the event happens and must not block. The metrics and the
	// logs are fed from the same events. Default: none.
	EventListener *event.Listener
	// DeserializationErrorHandler handles input records whose key or value
	// cannot be decoded. Default LogAndFail.
	// (deserialization.exception.handler.)
	DeserializationErrorHandler topology.ErrorHandler
	// ProcessingErrorHandler handles errors and panics raised while
	// processing a record or punctuating. Default LogAndFail.
	// (processing.exception.handler.)
	ProcessingErrorHandler topology.ErrorHandler
	// ProductionErrorHandler handles output records Kafka refused to
	// accept. Default LogAndFail; with LogAndContinue the record is
	// dropped (and counted), so use it only for outputs you can afford to
	// lose. Changelog records are never dropped: a refused one always
	// fails the app, since dropping it would lose state at the next
	// restore. (production.exception.handler.)
	ProductionErrorHandler topology.ErrorHandler
	// DeadLetterQueueTopic, when set, receives the raw input record of
	// every record a deserialization or processing handler skipped, with
	// __streams.errors.* headers naming the failure and its source
	// topic/partition/offset. The topic must exist.
	// (errors.dead.letter.queue.topic.name.)
	DeadLetterQueueTopic string
	// MaxBufferedRecordsPerPartition is how many fetched records a task may
	// hold per input partition before polling waits for it to work them
	// down; a task that stays over it for 100ms has its partitions paused.
	// Default 1000. (buffered.records.per.partition.)
	MaxBufferedRecordsPerPartition int
	// RepartitionPurgeInterval is how often records of repartition topics
	// that were consumed and committed are deleted. Repartition topics are
	// created with retention.ms=-1, so this is what keeps them small.
	// Default 30s. (repartition.purge.interval.ms.)
	RepartitionPurgeInterval time.Duration
	// StateListener is called on every state change, synchronously from the
	// goroutine that caused it; it must not block or call Run.
	StateListener func(old, new State)
	// Registerer receives the application's Prometheus metrics. Default: a
	// private registry.
	Registerer prometheus.Registerer
}

// withDefaults returns cfg with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.StateDir == "" {
		c.StateDir = filepath.Join(os.TempDir(), "runnel")
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = 30 * time.Second
		if c.Guarantee == ExactlyOnce {
			c.CommitInterval = 100 * time.Millisecond
		}
	}
	if c.TransactionTimeout == 0 {
		c.TransactionTimeout = 10 * time.Second
	}
	if c.StateStoreUncommittedMaxBytes == 0 {
		c.StateStoreUncommittedMaxBytes = runtime.DefaultMaxUncommittedStateBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.KafkaClientLogLevel == nil {
		c.KafkaClientLogLevel = slog.LevelWarn
	}
	if c.DeserializationErrorHandler == nil {
		c.DeserializationErrorHandler = LogAndFail
	}
	if c.ProcessingErrorHandler == nil {
		c.ProcessingErrorHandler = LogAndFail
	}
	if c.ProductionErrorHandler == nil {
		c.ProductionErrorHandler = LogAndFail
	}
	if c.RepartitionPurgeInterval == 0 {
		c.RepartitionPurgeInterval = 30 * time.Second
	}
	if c.MaxBufferedRecordsPerPartition == 0 {
		c.MaxBufferedRecordsPerPartition = 1000
	}
	switch {
	case c.StateCleanupDelay == 0:
		c.StateCleanupDelay = 10 * time.Minute
	case c.StateCleanupDelay < 0:
		c.StateCleanupDelay = 0
	}
	c.CacheMaxBytes = runtime.CacheBytes(c.CacheMaxBytes)
	return c
}

// validate reports every invalid field.
func (c Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: Config.%s: %s", ErrConfig, field, fmt.Sprintf(format, args...)))
	}
	if c.AppID == "" {
		bad("AppID", "required")
	} else if !graph.ValidName(c.AppID) {
		bad("AppID", "%q may only contain letters, digits, '.', '_' and '-'", c.AppID)
	}
	if len(c.Brokers) == 0 {
		bad("Brokers", "at least one bootstrap server is required")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			bad("Brokers", "%q is not host:port: %v", b, err)
		}
	}
	switch c.Guarantee {
	case AtLeastOnce:
	case ExactlyOnce:
	default:
		bad("Guarantee", "unknown value %d", int(c.Guarantee))
	}
	if c.CommitInterval < 0 {
		bad("CommitInterval", "negative duration %v", c.CommitInterval)
	}
	if c.InstanceID != "" && !graph.ValidName(c.InstanceID) {
		bad("InstanceID", "%q may only contain letters, digits, '.', '_' and '-'", c.InstanceID)
	}
	if c.TransactionTimeout < 0 {
		bad("TransactionTimeout", "negative duration %v", c.TransactionTimeout)
	}
	if d := c.withDefaults(); c.Guarantee == ExactlyOnce && d.TransactionTimeout <= d.CommitInterval {
		bad("TransactionTimeout", "%v must be longer than CommitInterval (%v), or every transaction times out", d.TransactionTimeout, d.CommitInterval)
	}
	if c.StateStoreUncommittedMaxBytes < 0 {
		bad("StateStoreUncommittedMaxBytes", "negative value %d", c.StateStoreUncommittedMaxBytes)
	}
	if c.RepartitionPurgeInterval < 0 {
		bad("RepartitionPurgeInterval", "negative duration %v", c.RepartitionPurgeInterval)
	}
	if c.MaxBufferedRecordsPerPartition < 0 {
		bad("MaxBufferedRecordsPerPartition", "negative value %d", c.MaxBufferedRecordsPerPartition)
	}
	return errors.Join(errs...)
}
