package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/internal/storage"
	"github.com/runnel-dev/runnel/stream/event"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config configures a Runtime. Package stream validates it and fills in
// defaults; the runtime trusts it.
type Config struct {
	AppID          string
	Brokers        []string
	Topology       *graph.Graph
	CommitInterval time.Duration
	// ClientOpts are appended to the runtime's own franz-go options.
	ClientOpts []kgo.Opt
	Logger     *slog.Logger
	// Error handlers; nil means fail.
	OnDeserializationError topology.ErrorHandler
	OnProcessingError      topology.ErrorHandler
	OnProductionError      topology.ErrorHandler
	DeadLetterTopic        string
	// MaxBufferedPerPartition is how many fetched records a task may hold
	// per input partition before the poll loop waits for it, and then
	// pauses its partitions (waitForRoom).
	MaxBufferedPerPartition int
	// PurgeInterval is how often consumed records of repartition topics
	// are deleted (Kafka Streams' repartition.purge.interval.ms).
	PurgeInterval time.Duration
	// Events receives the runtime's events, besides its metrics and
	// logs. All its functions are set (event.Listener.EnsureDefaults).
	Events event.Listener
	// ClientLogLevel is the level below which franz-go's own logs are
	// dropped.
	ClientLogLevel slog.Level
	// OnFailing is called when the runtime starts shutting down after a
	// failure, before it closes the tasks and leaves the group.
	OnFailing func()
	Metrics   *Metrics
	// StateDir is the directory of the instance's state database (opened
	// only when the topology has stores); StateFS its file system
	// (default: the OS's).
	StateDir string
	StateFS  vfs.FS
	// CacheMaxBytes is the record cache budget of each task.
	CacheMaxBytes int64
	// StateCleanupDelay is how long the local state of a task this
	// instance does not own is kept before it is deleted (0: kept).
	StateCleanupDelay time.Duration
	// ExactlyOnce makes every commit one Kafka transaction holding the
	// outputs, the changelog records and the input offsets (KIP-447);
	// every consumer then reads committed records only.
	ExactlyOnce bool
	// InstanceID names the instance in its transactional id,
	// "<AppID>-<InstanceID>"; "" means the id kept next to StateDir.
	InstanceID string
	// TransactionTimeout is the producer's transaction timeout.
	TransactionTimeout time.Duration
	// MaxUncommittedStateBytes bounds each task's uncommitted state (0:
	// DefaultMaxUncommittedStateBytes).
	MaxUncommittedStateBytes int64
}

// Runtime runs a topology as one member of the application's consumer
// group. Run is its whole lifecycle.
type Runtime struct {
	cfg Config
	// log, cl, prod and subOf are set by Run's goroutine (log and subOf
	// before the first client exists, cl and prod by connect before its
	// group can call back), and read by every goroutine.
	log  *slog.Logger
	cl   *kgo.Client
	prod *kafkaProducer
	// subOf maps a topic to the sub-topology that reads it.
	subOf func(topic string) (int, bool)
	// events is cfg.Events teed with the metrics and the logs; set by Run
	// before the first client exists.
	events event.Listener
	// txn is the exactly-once transaction state; nil under at-least-once.
	txn  *txnSession
	adm  *kadm.Client
	auth authWatch   // the admin client's failed SASL authentications (set by its hook)
	db   *storage.DB // nil for stateless topologies
	// repartition and changelogs hold the full names of the repartition
	// and changelog topics; started is when the runtime was created.
	// Read-only.
	repartition, changelogs map[string]bool
	started                 time.Time

	// mu serializes task management and commits between the poll loop and
	// the group callbacks. Lock order: mu before worker.mu and
	// worker.flow (see the package doc).
	mu struct {
		sync.Mutex
		workers map[topology.TaskID]*worker
		// closing is set by shutdown: callbacks then open no tasks.
		closing bool
		// rejoining is set once a failed transaction dooms the client:
		// its callbacks then open no tasks.
		rejoining bool
		// purgeable holds committed offsets of repartition topics not
		// yet purged; lastPurge is when they last were.
		purgeable kadm.Offsets
		lastPurge time.Time
		// released holds when each task was last closed here, for the
		// state cleaner.
		released map[string]time.Time
	}

	commitRequested chan struct{} // cap 1
	room            chan struct{} // cap 1; a full worker worked its buffer down (see waitForRoom)
	failed          chan struct{} // closed by fail
	failOnce        sync.Once
	err             error // the first fatal error; set before failed is closed

	// produceCtx bounds every Produce call; cancelProduce fails the
	// records not yet produced (on failure, or when shutdown takes too long).
	produceCtx    context.Context
	cancelProduce context.CancelFunc
}

// New returns a runtime for cfg; Run starts it. cfg is used as given:
// package stream applies the defaults (stream.Config.withDefaults).
func New(cfg Config) *Runtime {
	produceCtx, cancelProduce := context.WithCancel(context.Background())
	r := &Runtime{
		produceCtx:      produceCtx,
		cancelProduce:   cancelProduce,
		cfg:             cfg,
		log:             cfg.Logger.With("app", cfg.AppID),
		repartition:     internalTopics(cfg, graph.Repartition),
		changelogs:      internalTopics(cfg, graph.Changelog),
		started:         time.Now(),
		commitRequested: make(chan struct{}, 1),
		room:            make(chan struct{}, 1),
		failed:          make(chan struct{}),
	}
	if cfg.ExactlyOnce {
		r.txn = &txnSession{}
	}
	r.mu.workers = map[topology.TaskID]*worker{}
	r.mu.purgeable, r.mu.lastPurge = kadm.Offsets{}, time.Now()
	r.mu.released = map[string]time.Time{}
	return r
}

// fail records the first fatal error, wakes the poll loop and fails the
// records still waiting to be produced (they will not be committed), so no
// task stays blocked producing.
func (r *Runtime) fail(err error) {
	r.failOnce.Do(func() {
		r.log.Error("application failed", "err", err)
		r.err = err
		close(r.failed)
		r.cancelProduce()
	})
}

// fatal returns the first fatal error, or nil.
func (r *Runtime) fatal() error {
	select {
	case <-r.failed:
		return r.err
	default:
		return nil
	}
}

func (r *Runtime) topicName(name string) string {
	return r.cfg.Topology.TopicName(r.cfg.AppID, name)
}

// Run checks and creates topics, joins the group and processes until ctx is
// done or a task fails. On ctx cancellation it finishes the current
// records, flushes, commits, closes the tasks and leaves the group, and
// returns nil; on failure it returns the error without committing the
// failed work. Under exactly-once, a transaction that fails beyond an
// abort (a fenced producer, exhausted retries) closes every task without
// committing, and Run rejoins the group with a new client.
func (r *Runtime) Run(ctx context.Context) error {
	defer r.cancelProduce()
	if len(r.cfg.Topology.Stores()) > 0 {
		db, err := storage.Open(r.cfg.StateDir, storage.Options{FS: r.cfg.StateFS, Logger: r.log})
		if err != nil {
			return fmt.Errorf("stream: opening the state directory: %w", err)
		}
		r.db = db
		defer func() {
			if err := db.Close(); err != nil {
				r.log.Warn("closing the state database", "err", err)
			}
		}()
	}
	txnID := ""
	if r.cfg.ExactlyOnce {
		id := r.cfg.InstanceID
		if id == "" {
			var lock io.Closer
			var err error
			if id, lock, err = stateDirInstanceID(r.cfg.StateFS, r.cfg.StateDir); err != nil {
				return err
			}
			defer lock.Close()
		}
		txnID = r.cfg.AppID + "-" + id
		r.log = r.log.With("transactional_id", txnID)
	}
	r.events = event.Tee(event.Tee(r.cfg.Metrics.listener(), loggingListener(r.log)), r.cfg.Events)
	topics, subOf := r.subscription()
	r.subOf = subOf
	bal := &balancer{subOf: subOf}
	adminCl, err := r.newAdminClient()
	if err != nil {
		return err
	}
	defer adminCl.Close()
	r.adm = kadm.NewClient(adminCl)
	if err := r.prepareTopics(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for {
		// Before the client exists: its first assignment (RebalanceEnd)
		// may come at once.
		r.events.RebalanceStart(event.RebalanceInfo{Reason: "join"})
		if err := r.connect(topics, bal, txnID); err != nil {
			return err
		}
		err = r.poll(ctx)
		var rejoin *rejoinError
		if !errors.As(err, &rejoin) || ctx.Err() != nil || r.fatal() != nil {
			break
		}
		if r.txn.rejoins++; r.txn.rejoins > maxRejoins {
			r.fail(fmt.Errorf("stream: %d transactions in a row failed, giving up: %w", r.txn.rejoins, err))
			break
		}
		// poll closed the tasks without committing.
		r.log.Warn("transaction failed: the tasks were closed without committing; rejoining with a new producer", "err", err)
		r.cl.Close()
	}
	var rejoin *rejoinError
	cancelledRejoin := errors.As(err, &rejoin) && ctx.Err() != nil && r.fatal() == nil
	if (err != nil && !cancelledRejoin) || r.fatal() != nil {
		r.cfg.OnFailing()
	}
	r.shutdown(err) // err set: nothing more is committed
	r.cl.AllowRebalance()
	r.cl.Close() // leaves the group; revocation finds no tasks left
	if cancelledRejoin {
		// Stopping anyway: the failed transaction is not committed, and
		// its records are processed again by the next owner.
		r.log.Warn("the last transaction failed while stopping; its records will be processed again", "err", err)
		err = nil
	}
	if err == nil {
		err = r.fatal()
	}
	return err
}

// maxRejoins bounds how many times in a row Run rejoins with a new client
// after a failed transaction without committing one in between: a failure
// that persists (e.g. missing ACLs) fails the app instead of looping.
const maxRejoins = 5

// rejoinError is a transaction failure that a new client recovers from:
// Run closes every task without committing and joins the group again.
type rejoinError struct{ err error }

func (e *rejoinError) Error() string { return e.err.Error() }
func (e *rejoinError) Unwrap() error { return e.err }

// closeTimeout bounds closing the tasks at shutdown or revocation: the
// final flush and commit, and (at shutdown) how long a task may stay
// blocked producing. Past it Run fails instead of hanging when the cluster
// is gone.
const closeTimeout = 30 * time.Second

// shutdown stops and closes all tasks, committing their work unless err
// (or an earlier failure) says the run failed.
func (r *Runtime) shutdown(err error) {
	r.blockRebalances()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.closing = true
	unblock := time.AfterFunc(closeTimeout, r.cancelProduce) // frees tasks blocked in Produce
	defer unblock.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	r.closeWorkersLocked(ctx, err == nil && r.fatal() == nil, false)
	if r.txn != nil {
		// Whatever the closing tasks produced since the last commit is
		// aborted now rather than at the transaction timeout, so readers
		// of these partitions (read_committed) are not held back.
		if _, err := r.txn.sess.End(ctx, kgo.TryAbort); err != nil {
			r.log.Warn("aborting the open transaction", "err", err)
		}
	}
}

// internalTopics returns the full names of the internal topics of a kind.
func internalTopics(cfg Config, kind graph.InternalTopicKind) map[string]bool {
	out := map[string]bool{}
	for _, it := range cfg.Topology.InternalTopics() {
		if it.Kind == kind {
			out[cfg.Topology.TopicName(cfg.AppID, it.Name)] = true
		}
	}
	return out
}
