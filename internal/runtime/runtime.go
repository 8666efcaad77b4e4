package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/internal/storage"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
	// are deleted (default 30s, Kafka Streams' repartition.purge.interval.ms).
	PurgeInterval time.Duration
	// OnRebalancing and OnRunning report the group state: called when a
	// rebalance starts and when tasks are assigned and running.
	OnRebalancing, OnRunning func()
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
	// RestoreListener, when set, observes restoration.
	RestoreListener state.RestoreListener
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
	log *slog.Logger
	cl  *kgo.Client
	// sess wraps cl under exactly-once (nil otherwise): it ends
	// transactions, aborting those a rebalance interrupted.
	sess *kgo.GroupTransactSession
	adm  *kadm.Client
	auth authWatch   // the admin client's failed SASL authentications
	db   *storage.DB // nil for stateless topologies
	prod *kafkaProducer
	// subOf maps a topic to the sub-topology that reads it; set by Run.
	subOf func(topic string) (int, bool)

	// mu serializes task management and commits between the poll loop and
	// the group callbacks.
	mu      sync.Mutex
	workers map[topology.TaskID]*worker // guarded by mu
	closing bool                        // guarded by mu
	// rejoining is set (under mu) once a failed transaction dooms the
	// client: its callbacks then open no tasks. rejoins counts the
	// rejoins since the last committed transaction (Run's goroutine).
	rejoining bool
	rejoins   int
	// purgeable holds committed offsets of repartition topics not yet
	// purged; lastPurge is when they last were. Guarded by mu.
	purgeable kadm.Offsets
	lastPurge time.Time
	// repartition and changelogs hold the full names of the repartition
	// and changelog topics.
	repartition, changelogs map[string]bool
	// txnErr is the first produce error since the transaction began that
	// keeps it from committing (see endsTransaction). Guarded by txnErrMu.
	txnErrMu sync.Mutex
	txnErr   error
	// lastTxnOffsets are the offsets of the last committed transaction
	// (nil after an abort or a new client); endTxn says a rebalance
	// happened since, so the transaction must end (abort) even if empty.
	// Guarded by mu.
	lastTxnOffsets map[string]map[int32]kgo.EpochOffset
	endTxn         bool
	// released holds when each task was last closed here, for the state
	// cleaner; started is when the runtime was created. Guarded by mu.
	released map[string]time.Time
	started  time.Time

	// pendingCallback is set while the group waits to call a rebalance
	// callback that a commit blocks, and endCancel cancels the context of
	// the transaction's End in progress (nil when none is). Guarded by
	// endMu; see onCallbackBlocked.
	endMu           sync.Mutex
	pendingCallback bool
	endCancel       context.CancelFunc

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

// New returns a runtime for cfg; Run starts it.
func New(cfg Config) *Runtime {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics, _ = NewMetrics(nil, cfg.AppID) // a private registry cannot clash
	}
	if cfg.MaxBufferedPerPartition <= 0 {
		cfg.MaxBufferedPerPartition = 1000
	}
	if cfg.PurgeInterval <= 0 {
		cfg.PurgeInterval = 30 * time.Second
	}
	repartition := internalTopics(cfg, graph.Repartition)
	produceCtx, cancelProduce := context.WithCancel(context.Background())
	return &Runtime{
		produceCtx:      produceCtx,
		cancelProduce:   cancelProduce,
		cfg:             cfg,
		log:             cfg.Logger.With("app", cfg.AppID),
		workers:         map[topology.TaskID]*worker{},
		purgeable:       kadm.Offsets{},
		lastPurge:       time.Now(),
		repartition:     repartition,
		changelogs:      internalTopics(cfg, graph.Changelog),
		released:        map[string]time.Time{},
		started:         time.Now(),
		commitRequested: make(chan struct{}, 1),
		room:            make(chan struct{}, 1),
		failed:          make(chan struct{}),
	}
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
	topics, subOf := r.subscription()
	r.subOf = subOf
	bal := &balancer{subOf: subOf}
	opts := []kgo.Opt{
		kgo.SeedBrokers(r.cfg.Brokers...),
		kgo.WithLogger(kgoLogger{r.log}),
		kgo.ConsumerGroup(r.cfg.AppID),
		kgo.ConsumeTopics(topics...),
		kgo.Balancers(bal),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(r.onRevoked),
		kgo.OnPartitionsLost(r.onLost),
		kgo.OnPartitionsCallbackBlocked(r.onCallbackBlocked),
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
			kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	// The admin client learns about the internal topics it creates; a
	// short metadata age lets it find them soon after.
	adminCl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(r.cfg.Brokers...), kgo.WithLogger(kgoLogger{r.log}), kgo.MetadataMinAge(250 * time.Millisecond), kgo.WithHooks(&r.auth)}, r.cfg.ClientOpts...)...)
	if err != nil {
		return fmt.Errorf("stream: creating admin client: %w", err)
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
		if err := r.connect(opts, bal); err != nil {
			return err
		}
		r.notify(r.cfg.OnRebalancing)
		err = r.poll(ctx)
		var rejoin *rejoinError
		if !errors.As(err, &rejoin) || ctx.Err() != nil || r.fatal() != nil {
			break
		}
		if r.rejoins++; r.rejoins > maxRejoins {
			r.fail(fmt.Errorf("stream: %d transactions in a row failed, giving up: %w", r.rejoins, err))
			break
		}
		// poll closed the tasks without committing.
		r.log.Warn("transaction failed: the tasks were closed without committing; rejoining with a new producer", "err", err)
		r.cl.Close()
	}
	var rejoin *rejoinError
	cancelledRejoin := errors.As(err, &rejoin) && ctx.Err() != nil && r.fatal() == nil
	if (err != nil && !cancelledRejoin) || r.fatal() != nil {
		r.notify(r.cfg.OnFailing)
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

// errAborted reports a transaction Kafka aborted (a rebalance, a fenced
// group generation, an abortable error): its records will be processed
// again from the last commit.
var errAborted = errors.New("stream: transaction aborted")

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
		return fmt.Errorf("stream: creating client: %w", err)
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

func (r *Runtime) notify(fn func()) {
	if fn != nil {
		fn()
	}
}

// poll is the poll loop: fetch, dispatch to tasks, commit when due.
func (r *Runtime) poll(ctx context.Context) error {
	nextCommit := time.Now().Add(r.cfg.CommitInterval)
	nextCleanup := time.Now().Add(r.cfg.StateCleanupDelay)
	for {
		timeout := min(100*time.Millisecond, max(time.Until(nextCommit), time.Millisecond))
		if r.waitForRoom(ctx, timeout) {
			pctx, cancel := context.WithTimeout(ctx, timeout)
			fetches := r.cl.PollRecords(pctx, 10_000)
			cancel()
			if fetches.IsClientClosed() && ctx.Err() == nil {
				return errors.New("stream: client closed")
			}
			fetches.EachError(func(topic string, p int32, err error) {
				if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					r.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
					r.failOnAccessError(topic, p, err)
				}
			})
			if ctx.Err() == nil {
				r.dispatch(fetches)
			}
		}
		if ctx.Err() != nil {
			r.cl.AllowRebalance()
			return nil
		}
		select {
		case <-r.failed:
			r.cl.AllowRebalance()
			return r.err
		default:
		}
		commitNow := time.Now().After(nextCommit)
		select {
		case <-r.commitRequested:
			commitNow = true
		default:
		}
		if commitNow {
			r.blockRebalances()
			r.mu.Lock()
			err := r.commitLocked(ctx, r.workerList())
			if errors.Is(err, errAborted) {
				r.restartTasksLocked()
				err = nil
			}
			r.mu.Unlock()
			if err != nil {
				if errors.As(err, new(*rejoinError)) {
					// The client is doomed: close the tasks before the
					// group's callbacks may run again, so none opens a
					// task on it.
					r.mu.Lock()
					r.rejoining = true
					r.closeWorkersLocked(context.Background(), false)
					r.mu.Unlock()
					r.cl.AllowRebalance()
					return err
				}
				r.cl.AllowRebalance()
				if ctx.Err() != nil && r.fatal() == nil {
					// Cancelled mid-commit: a clean shutdown, whose final
					// commit (not bound to ctx) redoes this one.
					return nil
				}
				return err
			}
			nextCommit = time.Now().Add(r.cfg.CommitInterval)
			r.purgeRepartitionTopics(ctx)
		}
		if now := time.Now(); r.db != nil && r.cfg.StateCleanupDelay > 0 && now.After(nextCleanup) {
			r.cleanState(now)
			nextCleanup = now.Add(min(r.cfg.StateCleanupDelay, time.Minute))
		}
		r.cl.AllowRebalance()
	}
}

// blockRebalances keeps the group from rebalancing until the next
// AllowRebalance, so that commits never run concurrently with the group's
// callbacks: a poll with a cancelled context returns at once but, with
// kgo.BlockRebalanceOnPoll, counts as a poll whose records are being
// processed (one that returned no fetch at all does not count). Under
// exactly-once this prevents a deadlock: the transactional session's revocation
// callback holds the lock that ending a transaction needs while it calls
// onRevoked, which waits for r.mu. It waits for a rebalance in progress to
// finish, so it must not be called with r.mu held.
func (r *Runtime) blockRebalances() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.cl.PollRecords(ctx, 1)
}

// dispatch hands fetched records to their tasks.
func (r *Runtime) dispatch(fetches kgo.Fetches) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		w := r.workerFor(p.Topic, p.Partition)
		if w == nil {
			r.log.Debug("dropping records of an unassigned partition", "topic", p.Topic, "partition", p.Partition)
			return
		}
		w.enqueue(p.Records)
	})
}

// waitForRoom is the poll loop's backpressure. It returns true at once if
// no task (paused ones aside) holds more than MaxBufferedPerPartition
// records per input partition. Otherwise it waits, up to timeout, until
// the full tasks have worked their buffers down to half that; if some are
// still full, those full for pauseAfter have their partitions paused, so
// the other tasks are fed again, and it returns false.
//
// Not polling comes first because with franz-go it is cheap and pausing
// is not. franz-go buffers at most one fetch per broker and fetches no
// more until polled, so memory stays bounded (a task holds at most the
// limit plus one poll's records). One poll hands a task up to 10 000
// records, ten times the default limit, so a fast task is full after most
// polls and empty again within milliseconds. Pausing it instead drops its
// partitions' buffered fetch, and a resumed partition is fetched only
// after the broker's in-flight fetch returns, which takes up to
// FetchMaxWait when the other partitions are idle: pausing on every burst
// made the pipe benchmark 3-30× slower than a plain franz-go loop.
func (r *Runtime) waitForRoom(ctx context.Context, timeout time.Duration) bool {
	if !r.anyFull() {
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-r.room:
			if !r.anyFull() {
				return true
			}
			continue
		case <-t.C:
			r.pauseFull(time.Now())
		case <-ctx.Done():
		case <-r.failed:
		}
		return false
	}
}

// anyFull reports whether an unpaused task holds more records than its
// limit, and marks each such task full so that its worker signals r.room
// once it is down to half (worker.drained).
func (r *Runtime) anyFull() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	full := false
	for _, w := range r.workers {
		limit := int64(r.cfg.MaxBufferedPerPartition * len(w.partitions))
		w.flowMu.Lock()
		if !w.full && w.buffered.Load() > limit {
			w.full, w.roomAt, w.fullSince = true, limit/2, time.Now()
		}
		full = full || (w.full && w.paused == nil)
		w.flowMu.Unlock()
	}
	return full
}

// pauseAfter is how long a task may stay full before its partitions are
// paused (see waitForRoom).
const pauseAfter = 100 * time.Millisecond

// pauseFull pauses the partitions of the tasks that have been full for
// pauseAfter; their workers resume them once they are down to half
// (worker.drained).
func (r *Runtime) pauseFull(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.workers {
		w.flowMu.Lock()
		if w.full && w.paused == nil && now.Sub(w.fullSince) >= pauseAfter {
			w.paused = map[string][]int32{}
			for _, tp := range w.partitions {
				w.paused[tp.topic] = append(w.paused[tp.topic], tp.partition)
			}
			// Under flowMu, so the worker's resume (drained) cannot run
			// between marking and pausing and be undone by this pause.
			r.cl.PauseFetchPartitions(w.paused)
		}
		w.flowMu.Unlock()
	}
}

// workerFor returns the worker of a partition's task. REQUIRES: r.mu held.
func (r *Runtime) workerFor(topic string, partition int32) *worker {
	for _, w := range r.workers {
		if w.task.ID().Partition == partition && slices.ContainsFunc(w.partitions, func(tp topicPartition) bool { return tp.topic == topic }) {
			return w
		}
	}
	return nil
}

// workerList returns the workers sorted by task. REQUIRES: r.mu held.
func (r *Runtime) workerList() []*worker {
	ws := make([]*worker, 0, len(r.workers))
	for _, w := range r.workers {
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b *worker) int { return compareTasks(a.task.ID(), b.task.ID()) })
	return ws
}

// commitLocked brings every worker to a barrier between records, flushes
// the record caches and the producer, and commits: the tasks' state is
// made durable and the workers' consumed offsets committed (at-least-once),
// or the transaction is committed first (exactly-once, see
// commitTransaction). Records that failed to produce and state that failed
// to persist fail the commit, so their inputs are never committed.
// REQUIRES: r.mu held.
func (r *Runtime) commitLocked(ctx context.Context, ws []*worker) error {
	for _, w := range ws {
		w.mu.Lock()
		defer w.mu.Unlock()
	}
	if err := r.fatal(); err != nil {
		return err // a task failed: its partial work must not be committed
	}
	for _, w := range ws {
		if w.restored {
			if err := w.task.FlushCache(); err != nil {
				r.fail(err) // the flush is half done: nothing may commit
				return err
			}
		}
	}
	if err := r.cl.Flush(ctx); err != nil {
		return fmt.Errorf("stream: flushing produced records: %w", err)
	}
	if err := r.fatal(); err != nil {
		return err // a record failed to produce
	}
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for _, w := range ws {
		for topic, ps := range w.task.Offsets() {
			if offsets[topic] == nil {
				offsets[topic] = map[int32]kgo.EpochOffset{}
			}
			for p, o := range ps {
				offsets[topic][p] = o
			}
		}
	}
	if r.sess != nil {
		if err := r.commitTransaction(offsets); err != nil {
			// Aborted or failed: the tasks go back to the last commit
			// (restartTasksLocked, or Run's rejoin). Until they are
			// closed their workers must not process another record:
			// its output would go to the next transaction and be
			// committed along with its reprocessing (duplicates), or
			// fail to produce outside a transaction.
			for _, w := range ws {
				w.halt()
			}
			return err
		}
		return r.commitStates(ws)
	}
	// Local state is made durable before the offsets are committed: a
	// crash in between reprocesses input over state that already holds
	// it (at-least-once), never the reverse.
	if err := r.commitStates(ws); err != nil {
		return err
	}
	if len(offsets) == 0 {
		return nil
	}
	var commitErr error
	r.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			commitErr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && commitErr == nil {
					commitErr = fmt.Errorf("%s-%d: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	if commitErr != nil {
		// Not fatal under at-least-once: the group moved on (rebalance or
		// fencing) and the new owner reprocesses from the last commit.
		r.log.Warn("offset commit failed; records since the last commit will be processed again", "err", commitErr)
		return nil
	}
	r.committed(offsets)
	return nil
}

// commitStates makes the restored tasks' state durable: each task's batch
// and changelog checkpoints in one atomic write. A failure fails the app.
func (r *Runtime) commitStates(ws []*worker) error {
	for _, w := range ws {
		if w.restored {
			if err := w.task.CommitState(); err != nil {
				r.fail(err)
				return err
			}
		}
	}
	return nil
}

// committed counts a successful commit and remembers the committed
// offsets of repartition topics for purging.
func (r *Runtime) committed(offsets map[string]map[int32]kgo.EpochOffset) {
	r.cfg.Metrics.commits.Inc()
	for topic, ps := range offsets {
		if r.repartition[topic] {
			for p, o := range ps {
				r.purgeable.Add(kadm.Offset{Topic: topic, Partition: p, At: o.Offset})
			}
		}
	}
}

// commitTransaction commits the open transaction, which holds every
// record produced since the last commit (outputs and changelogs), with the
// consumed offsets and the group's generation (KIP-447: a zombie whose
// generation is stale cannot commit). The caller then applies the tasks'
// state batches: a crash in between leaves local state at the previous
// transaction, and restoration replays the committed changelog tail. It
// begins the next transaction before returning, so tasks always produce
// into an open one. It returns errAborted when Kafka aborted the
// transaction, and a *rejoinError when the producer cannot go on (fenced,
// or out of retries). REQUIRES: workers at the barrier, producer flushed.
func (r *Runtime) commitTransaction(offsets map[string]map[int32]kgo.EpochOffset) error {
	// End's context must not be cancelled while the commit is in flight
	// (its outcome would be unknown); closeTimeout bounds it instead.
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	r.endMu.Lock()
	r.endCancel = cancel
	pending := r.pendingCallback
	r.endMu.Unlock()
	defer func() {
		r.endMu.Lock()
		r.endCancel = nil
		r.endMu.Unlock()
	}()
	txnErr := r.takeTxnErr()
	if txnErr == nil && !r.endTxn && r.prod.sent.Load() == 0 && maps.EqualFunc(offsets, r.lastTxnOffsets, maps.Equal) {
		// Nothing produced or processed since the last commit: an empty
		// transaction costs requests (and see setTxnOffsets).
		return nil
	}
	r.prod.sent.Store(0)
	// Until End succeeds, the next commit must not be skipped.
	r.lastTxnOffsets, r.endTxn = nil, true
	polled := r.cl.CommittedOffsets()
	ctx = kgo.PreTxnCommitFnContext(ctx, func(req *kmsg.TxnOffsetCommitRequest) error {
		setTxnOffsets(req, offsets, polled)
		return nil
	})
	try := kgo.TryCommit
	if txnErr != nil {
		r.log.Warn("aborting the transaction: a record in it failed to produce", "err", txnErr)
		try = kgo.TryAbort
	} else if pending {
		// The group is rebalancing, or has evicted this member: the
		// session would abort this transaction once the callback has
		// run, or End would wait for a heartbeat that never comes (see
		// onCallbackBlocked).
		r.log.Info("aborting the transaction: the group is rebalancing")
		try = kgo.TryAbort
	}
	committed, err := r.sess.End(ctx, try)
	if err != nil {
		return &rejoinError{fmt.Errorf("stream: ending the transaction: %w", err)}
	}
	if err := r.sess.Begin(); err != nil {
		return &rejoinError{fmt.Errorf("stream: beginning a transaction: %w", err)}
	}
	r.endTxn = false
	if !committed {
		r.cfg.Metrics.aborts.Inc()
		r.log.Info("transaction aborted; the records since the last commit will be processed again")
		return errAborted
	}
	r.lastTxnOffsets, r.rejoins = offsets, 0
	r.committed(offsets)
	return nil
}

// lostEndGrace is how long a transaction's End may still run after the
// group wanted to call a rebalance callback (see onCallbackBlocked).
const lostEndGrace = time.Second

// onCallbackBlocked runs when the group wants to call a rebalance callback
// that a commit blocks (blockRebalances). If this member was evicted from
// the group (its session expired: a zombie coming back), End(TryCommit)
// waits for a heartbeat that never comes: the heartbeat loop has ended,
// and the lost callback that would wake End cannot run before the commit
// is over, so End would wait for closeTimeout. Therefore, until a callback
// runs, transactions are aborted rather than committed (End(TryAbort)
// sends no heartbeat), which costs nothing: the session aborts the
// transaction after a revocation anyway. An End already in progress that
// is still running lostEndGrace after the signal is cancelled: its
// transaction is aborted (or its outcome unknown) and Run rejoins with a
// new client, which aborts whatever is left open; an End that sees an
// ordinary rebalance finishes well within the grace.
func (r *Runtime) onCallbackBlocked(context.Context, *kgo.Client) {
	r.endMu.Lock()
	r.pendingCallback = true
	cancel := r.endCancel
	r.endMu.Unlock()
	if cancel != nil {
		time.AfterFunc(lostEndGrace, cancel) // a no-op once that End has returned
	}
}

// callbackRuns clears pendingCallback: a rebalance callback runs.
func (r *Runtime) callbackRuns() {
	r.endMu.Lock()
	r.pendingCallback = false
	r.endMu.Unlock()
}

// setTxnOffsets makes req commit offsets, the positions the tasks have
// processed up to, instead of franz-go's default: everything polled, which
// includes records still queued in the tasks. Partitions polled but not
// processed keep their committed offset (committed, franz-go's view), so
// that req is not emptied while anything was polled (and commitTransaction
// skips transactions with nothing in them): franz-go answers an empty
// commit itself with a version 0 response, takes the broker for one
// without KIP-447, and then blocks the group's callbacks, and the next
// End, for 500ms.
func setTxnOffsets(req *kmsg.TxnOffsetCommitRequest, offsets, committed map[string]map[int32]kgo.EpochOffset) {
	ids := map[string][16]byte{}
	all := map[string]map[int32]kgo.EpochOffset{}
	for _, t := range req.Topics {
		ids[t.Topic] = t.TopicID
		for _, p := range t.Partitions {
			if o, ok := committed[t.Topic][p.Partition]; ok {
				if all[t.Topic] == nil {
					all[t.Topic] = map[int32]kgo.EpochOffset{}
				}
				all[t.Topic][p.Partition] = o
			}
		}
	}
	for topic, ps := range offsets {
		if all[topic] == nil {
			all[topic] = map[int32]kgo.EpochOffset{}
		}
		maps.Copy(all[topic], ps)
	}
	req.Topics = req.Topics[:0]
	for topic, ps := range all {
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic, rt.TopicID = topic, ids[topic]
		for p, o := range ps {
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, o.Offset, o.Epoch
			rp.Metadata = &req.MemberID
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
}

// restartTasksLocked closes every task without committing and opens it
// again, after an aborted transaction: its state goes back to the last
// commit (the batch is discarded; restoration replays nothing or the
// committed tail), as its input does (the aborting session rewound the
// consumer to the committed offsets). REQUIRES: r.mu held.
func (r *Runtime) restartTasksLocked() {
	assigned := r.closeWorkersLocked(context.Background(), false)
	r.assignLocked(assigned)
}

// purgeRepartitionTopics deletes the records of repartition topics below
// the committed offsets, at most every PurgeInterval, as Kafka Streams does
// (repartition.purge.interval.ms): they are read once, and the topics are
// created with infinite retention. Failures are logged and retried later.
func (r *Runtime) purgeRepartitionTopics(ctx context.Context) {
	r.mu.Lock()
	if len(r.purgeable) == 0 || time.Since(r.lastPurge) < r.cfg.PurgeInterval {
		r.mu.Unlock()
		return
	}
	offsets := r.purgeable
	r.purgeable, r.lastPurge = kadm.Offsets{}, time.Now()
	r.mu.Unlock()
	resps, err := r.adm.DeleteRecords(ctx, offsets)
	if err == nil {
		err = resps.Error()
	}
	if err != nil && ctx.Err() == nil {
		r.log.Warn("purging repartition topics failed", "err", err)
	}
}

// assign starts the tasks of the assigned partitions and reports whether it
// did.
func (r *Runtime) assign(assigned map[string][]int32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing || r.rejoining || r.fatal() != nil {
		return false
	}
	return r.assignLocked(assigned)
}

// assignLocked is assign with r.mu held.
func (r *Runtime) assignLocked(assigned map[string][]int32) bool {
	for topic, ps := range assigned {
		sub, ok := r.subOf(topic)
		if !ok {
			continue
		}
		for _, p := range ps {
			id := topology.TaskID{Subtopology: sub, Partition: p}
			w := r.workers[id]
			if w == nil {
				var err error
				if w, err = r.newWorker(id); err != nil {
					r.fail(err)
					return false
				}
				r.workers[id] = w
			}
			w.partitions = append(w.partitions, topicPartition{topic, p})
		}
	}
	for _, w := range r.workers {
		w.start()
	}
	r.cfg.Metrics.tasks.Set(float64(len(r.workers)))
	r.log.Info("tasks assigned", "tasks", len(r.workers))
	return true
}

// onRevoked stops every task at a record boundary, commits their work and
// closes them (the protocol is eager: everything is revoked). Under
// exactly-once a transaction cannot end inside the group's callback, so
// the tasks are closed without committing and the poll loop is asked to
// end the transaction, which the session aborts: the new owners process
// those records again, from the last commit.
func (r *Runtime) onRevoked(ctx context.Context, _ *kgo.Client, _ map[string][]int32) {
	r.callbackRuns()
	r.notifyRebalancing()
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, closeTimeout)
	defer cancel()
	r.closeWorkersLocked(ctx, r.fatal() == nil && r.sess == nil)
	r.endTransactionSoonLocked()
}

// onLost closes every task without committing: another member may already
// own the partitions.
func (r *Runtime) onLost(ctx context.Context, _ *kgo.Client, _ map[string][]int32) {
	r.callbackRuns()
	r.notifyRebalancing()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeWorkersLocked(ctx, false)
	r.endTransactionSoonLocked()
}

// endTransactionSoonLocked, under exactly-once, asks the poll loop to end
// the open transaction (which the session aborts after a revocation or a
// loss) even if it looks empty, so that the new tasks start in a fresh
// one. REQUIRES: r.mu held.
func (r *Runtime) endTransactionSoonLocked() {
	if r.sess != nil {
		r.endTxn = true
		r.requestCommit()
	}
}

// notifyRebalancing reports a rebalance, unless the revocation comes from
// leaving the group at shutdown (a failing app must not look rebalancing).
func (r *Runtime) notifyRebalancing() {
	r.mu.Lock()
	closing := r.closing
	r.mu.Unlock()
	if !closing {
		r.notify(r.cfg.OnRebalancing)
	}
}

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
	r.closing = true
	unblock := time.AfterFunc(closeTimeout, r.cancelProduce) // frees tasks blocked in Produce
	defer unblock.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	r.closeWorkersLocked(ctx, err == nil && r.fatal() == nil)
	if r.sess != nil {
		// Whatever the closing tasks produced since the last commit is
		// aborted now rather than at the transaction timeout, so readers
		// of these partitions (read_committed) are not held back.
		if _, err := r.sess.End(ctx, kgo.TryAbort); err != nil {
			r.log.Warn("aborting the open transaction", "err", err)
		}
	}
}

// closeWorkersLocked stops all workers, commits their work if commit is
// set, and closes their tasks. It returns the partitions they had.
// REQUIRES: r.mu held.
func (r *Runtime) closeWorkersLocked(ctx context.Context, commit bool) map[string][]int32 {
	ws := r.workerList()
	for _, w := range ws {
		w.stopAndWait()
	}
	if commit && len(ws) > 0 {
		err := r.commitLocked(ctx, ws)
		if errors.Is(err, errAborted) {
			r.log.Warn("the last transaction was aborted; its records will be processed again")
		} else if err != nil {
			r.fail(err)
		}
	}
	resume := map[string][]int32{}
	now := time.Now()
	for _, w := range ws {
		r.released[w.task.ID().String()] = now
		if err := w.task.Close(); err != nil {
			r.log.Warn("closing task", "task", w.task.ID().String(), "err", err)
		}
		for _, tp := range w.partitions {
			resume[tp.topic] = append(resume[tp.topic], tp.partition)
		}
		delete(r.workers, w.task.ID())
	}
	if len(resume) > 0 {
		r.cl.ResumeFetchPartitions(resume)
	}
	r.cfg.Metrics.tasks.Set(0)
	return resume
}

// cleanState deletes the local state of the tasks this instance has not
// owned for StateCleanupDelay (counted from their last close here, or from
// the start of Run), as Kafka Streams' state directory cleaner does
// (state.cleanup.delay.ms). Such a task, if it comes back, restores from
// the start of its changelog. Failures are logged and retried later.
func (r *Runtime) cleanState(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return
	}
	ids, err := r.db.Tasks()
	if err != nil {
		r.log.Warn("listing local task state", "err", err)
		return
	}
	owned := map[string]bool{}
	for id := range r.workers {
		owned[id.String()] = true
	}
	for _, id := range ids {
		since, ok := r.released[id]
		if !ok {
			since = r.started
		}
		if owned[id] || now.Sub(since) < r.cfg.StateCleanupDelay {
			continue
		}
		if err := r.db.DropTask(id); err != nil {
			r.log.Warn("deleting local task state", "task", id, "err", err)
			continue
		}
		delete(r.released, id)
		r.log.Info("deleted the local state of a task this instance does not own", "task", id, "unowned_for", now.Sub(since).Round(time.Millisecond))
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

// onProduced is the delivery callback of every produced record.
func (r *Runtime) onProduced(rec *kgo.Record, err error) {
	if err == nil {
		r.cfg.Metrics.produced.Inc()
		return
	}
	r.cfg.Metrics.productionErrors.Inc()
	ectx := topology.ErrorContext{
		Record: topology.RecordMetadata{Topic: rec.Topic, Partition: rec.Partition, Offset: -1},
		Valid:  true, Key: rec.Key, Value: rec.Value, Headers: rec.Headers, Timestamp: rec.Timestamp.UnixMilli(),
	}
	err = produceError(rec, err)
	if r.cfg.ExactlyOnce && endsTransaction(err) {
		// Not the record's fault: the transaction fails as a whole and
		// is aborted at the next commit, which processes its records
		// again.
		r.txnErrMu.Lock()
		if r.txnErr == nil {
			r.txnErr = err
		}
		r.txnErrMu.Unlock()
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
		r.cfg.Metrics.skipped.WithLabelValues("production").Inc()
		return
	}
	r.fail(err)
}

// endsTransaction reports whether a produce error means the producer's
// transaction cannot commit: the producer was fenced (by an instance with
// the same transactional id, or by the broker aborting the transaction at
// its timeout, which bumps the epoch), its state was lost, or the broker
// asks for an abort.
func endsTransaction(err error) bool {
	for _, e := range []error{kerr.ProducerFenced, kerr.InvalidProducerEpoch, kerr.TransactionAbortable,
		kerr.InvalidProducerIDMapping, kerr.UnknownProducerID, kerr.InvalidTxnState,
		kerr.OutOfOrderSequenceNumber, kgo.ErrAborting} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// takeTxnErr returns and clears the error that keeps the open transaction
// from committing.
func (r *Runtime) takeTxnErr() error {
	r.txnErrMu.Lock()
	defer r.txnErrMu.Unlock()
	err := r.txnErr
	r.txnErr = nil
	return err
}

// requestCommit asks the poll loop for a commit at its next turn.
func (r *Runtime) requestCommit() {
	select {
	case r.commitRequested <- struct{}{}:
	default:
	}
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
