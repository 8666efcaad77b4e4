package stream

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/internal/runtime"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/stream/event"
	"github.com/runnel-dev/runnel/topology"
)

// State is the lifecycle state of an App, with Kafka Streams' names.
type State int

const (
	// Created: NewApp succeeded, Run not called yet.
	Created State = iota
	// Rebalancing: joining the group or moving tasks; not processing.
	Rebalancing
	// Running: tasks are assigned and processing.
	Running
	// PendingShutdown: Run's context is done; finishing, committing and
	// leaving the group.
	PendingShutdown
	// NotRunning: Run returned after a clean shutdown.
	NotRunning
	// PendingError: a task failed; shutting down without committing it.
	PendingError
	// Error: Run returned an error.
	Error
)

var stateNames = [...]string{"CREATED", "REBALANCING", "RUNNING", "PENDING_SHUTDOWN", "NOT_RUNNING", "PENDING_ERROR", "ERROR"}

// String returns the Kafka Streams name, e.g. "RUNNING".
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Errors Run returns at start, matchable with errors.Is.
var (
	// ErrTopicMissing: a source, sink or dead-letter topic does not exist.
	ErrTopicMissing = runtime.ErrTopicMissing
	// ErrNotCopartitioned: the source topics of one sub-topology (merged
	// or read together) have different partition counts.
	ErrNotCopartitioned = runtime.ErrNotCopartitioned
	// ErrPartitionMismatch: an existing internal topic (changelog or
	// repartition) has a partition count other than the one the topology
	// needs; the error names the topic and both counts.
	ErrPartitionMismatch = runtime.ErrPartitionMismatch
	// ErrAuthentication: the cluster rejected the SASL credentials of
	// Config.ClientOpts (after a few attempts); the error names the
	// mechanism and user.
	ErrAuthentication = runtime.ErrAuthentication
	// ErrAuthorization: the cluster's ACLs deny the application access to
	// a topic (named in the error), its group or its transactional id.
	ErrAuthorization = runtime.ErrAuthorization
)

// ErrAlreadyRun is returned by Run when called more than once.
var ErrAlreadyRun = errors.New("stream: App.Run called more than once")

// App is a stream processing application: a topology and its config. Its
// methods are safe for concurrent use; Run may be called once.
type App struct {
	topo *topology.Topology
	cfg  Config
	rt   *runtime.Runtime
	// events is the user's EventListener (no-ops when none), fed the
	// state changes.
	events event.Listener

	// changeMu serializes state changes with their listener calls, which
	// come from several goroutines (Run, ctx's AfterFunc, group callbacks),
	// so the listener sees the changes in the order they happen.
	changeMu sync.Mutex
	mu       sync.Mutex
	state    State // guarded by mu
	ran      bool  // guarded by mu
}

// NewApp builds the topology and validates cfg. Errors name the invalid
// node (matching topology.ErrInvalid) or Config field (matching ErrConfig);
// a topology without a source is topology.ErrNoSource.
// NewApp does no I/O: topics are checked when Run starts.
func NewApp(b *Builder, cfg Config) (*App, error) {
	topo, err := b.Build()
	if err != nil {
		return nil, err
	}
	return NewAppFromTopology(topo, cfg)
}

// NewAppFromTopology is NewApp for an already built topology.
func NewAppFromTopology(topo *topology.Topology, cfg Config) (*App, error) {
	g := graph.Of(topo)
	if g == nil {
		return nil, fmt.Errorf("%w: the topology is nil or was not made by Builder.Build", topology.ErrInvalid)
	}
	if len(g.Subtopologies()) == 0 {
		return nil, topology.ErrNoSource
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.EnsureExplicitInternalResourceNaming {
		if err := checkExplicitNaming(g); err != nil {
			return nil, err
		}
	}
	metrics, err := runtime.NewMetrics(cfg.Registerer, cfg.AppID)
	if err != nil {
		return nil, fmt.Errorf("%w: Config.Registerer: %w", ErrConfig, err)
	}
	a := &App{topo: topo, cfg: cfg}
	if cfg.EventListener != nil {
		a.events = *cfg.EventListener
	}
	a.events.EnsureDefaults()
	// The runtime's events also drive the state (and the restore
	// listener), ahead of the user's listener.
	events := event.Listener{
		RebalanceStart: func(event.RebalanceInfo) { a.setState(Rebalancing) },
		RebalanceEnd:   func(event.RebalanceInfo) { a.setState(Running) },
	}
	if l := cfg.RestoreListener; l != nil {
		events.RestoreStart = func(i event.RestoreInfo) { l.OnRestoreStart(i.Topic, i.Partition, i.Store, i.StartOffset, i.EndOffset) }
		events.RestoreProgress = func(i event.RestoreInfo) { l.OnBatchRestored(i.Topic, i.Partition, i.Store, i.Offset, i.Records) }
		events.RestoreEnd = func(i event.RestoreInfo) { l.OnRestoreEnd(i.Topic, i.Partition, i.Store, i.Records) }
		if sl, ok := l.(state.RestoreSuspendedListener); ok {
			events.RestoreSuspended = func(i event.RestoreInfo) { sl.OnRestoreSuspended(i.Topic, i.Partition, i.Store, i.Records) }
		}
	}
	a.rt = runtime.New(runtime.Config{
		AppID:                    cfg.AppID,
		Brokers:                  cfg.Brokers,
		Topology:                 g,
		CommitInterval:           cfg.CommitInterval,
		ClientOpts:               cfg.ClientOpts,
		Logger:                   cfg.Logger,
		ClientLogLevel:           cfg.KafkaClientLogLevel.Level(),
		Events:                   event.Tee(events, a.events),
		OnDeserializationError:   cfg.DeserializationErrorHandler,
		OnProcessingError:        cfg.ProcessingErrorHandler,
		OnProductionError:        cfg.ProductionErrorHandler,
		DeadLetterTopic:          cfg.DeadLetterQueueTopic,
		MaxBufferedPerPartition:  cfg.MaxBufferedRecordsPerPartition,
		PurgeInterval:            cfg.RepartitionPurgeInterval,
		StateDir:                 filepath.Join(cfg.StateDir, cfg.AppID),
		StateFS:                  cfg.StateFS,
		CacheMaxBytes:            cfg.CacheMaxBytes,
		StateCleanupDelay:        cfg.StateCleanupDelay,
		ExactlyOnce:              cfg.Guarantee == ExactlyOnce,
		InstanceID:               cfg.InstanceID,
		TransactionTimeout:       cfg.TransactionTimeout,
		MaxUncommittedStateBytes: cfg.StateStoreUncommittedMaxBytes,
		OnFailing:                func() { a.setState(PendingError) },
		Metrics:                  metrics,
	})
	return a, nil
}

// Topology returns the compiled topology, e.g. for Describe.
func (a *App) Topology() *topology.Topology { return a.topo }

// State returns the current state.
func (a *App) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// setState moves to s (no-op once shutting down, except to the final
// states) and calls the listener.
func (a *App) setState(s State) {
	a.changeMu.Lock()
	defer a.changeMu.Unlock()
	a.mu.Lock()
	old := a.state
	// NotRunning and Error are final, and a failing app does not go back to
	// PendingShutdown: ctx's AfterFunc runs on its own goroutine and may
	// come after Run has already moved on.
	if old == s || old == NotRunning || old == Error || (old == PendingError && s == PendingShutdown) ||
		(old >= PendingShutdown && s < PendingShutdown) {
		a.mu.Unlock()
		return
	}
	a.state = s
	a.mu.Unlock()
	a.cfg.Logger.Info("state change", "app", a.cfg.AppID, "from", old.String(), "to", s.String())
	if a.cfg.StateListener != nil {
		a.cfg.StateListener(old, s)
	}
	a.events.StateChange(event.StateChangeInfo{Old: old.String(), New: s.String()})
}

// Run runs the application until ctx is done or it fails. It checks that
// source and sink topics exist (an error names any that is missing),
// creates internal topics, joins the consumer group AppID and processes
// the assigned tasks. When ctx is done it finishes the records in
// progress, flushes, commits, leaves the group and returns nil. When a
// record fails under LogAndFail (deserialization, processing or
// production), it stops without committing the failed work and returns the
// error. A failed offset commit is not fatal: it is logged and the records
// since the last commit are processed again (at-least-once). Under
// exactly-once an aborted transaction is not fatal either: its tasks are
// closed without committing and reopened, and its records processed again;
// a failed record's open transaction is aborted before Run returns.
func (a *App) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.ran {
		a.mu.Unlock()
		return ErrAlreadyRun
	}
	a.ran = true
	a.mu.Unlock()

	a.setState(Rebalancing)
	stop := context.AfterFunc(ctx, func() { a.setState(PendingShutdown) })
	defer stop()
	err := a.rt.Run(ctx)
	if err != nil {
		a.setState(PendingError)
		a.setState(Error)
		return err
	}
	a.setState(PendingShutdown)
	a.setState(NotRunning)
	return nil
}
