package runtime

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kgo"
)

type topicPartition struct {
	topic     string
	partition int32
}

// batchSize bounds how many records a worker processes before it releases
// its lock, so a commit never waits long for the barrier.
const batchSize = 256

// worker is the goroutine that owns one task. The poll loop hands it records
// through the inbox; the committer takes mu to stop it between records.
type worker struct {
	task       *Task
	rt         *Runtime
	partitions []topicPartition // guarded by rt.mu

	// mu is held while the task processes records, and by the committer
	// to hold it at a barrier between records. Lock order: rt.mu, then
	// mu, then inbox.
	mu struct {
		sync.Mutex
		// restored is set once the task's stores are restored; until
		// then the committer leaves the task alone.
		restored bool
		// processed counts the records processed since the last commit.
		processed int64
	}

	// inbox holds the fetched records the poll loop handed over and the
	// task has not taken yet.
	inbox struct {
		sync.Mutex
		recs [][]*kgo.Record
	}
	buffered atomic.Int64 // records handed over and not yet processed

	// flow is the backpressure state (see Runtime.waitForRoom), set by
	// the poll loop (under rt.mu) and cleared by the worker in drained.
	flow struct {
		sync.Mutex
		full      bool               // the task held more than its limit
		fullSince time.Time          // when full was set
		roomAt    int64              // full ends once buffered is down to this
		paused    map[string][]int32 // the task's paused partitions, or nil
	}

	wake    chan struct{} // cap 1
	stop    chan struct{}
	done    chan struct{}
	started bool
	// ctx is cancelled by stopAndWait; it bounds restoration.
	ctx    context.Context
	cancel context.CancelFunc
}

func (r *Runtime) newWorker(id topology.TaskID) (*worker, error) {
	task, err := NewTask(TaskConfig{
		State: r.db, CacheMaxBytes: r.cfg.CacheMaxBytes,
		AppID: r.cfg.AppID, ID: id, Topology: r.cfg.Topology, Producer: r.prod, Logger: r.log,
		OnDeserializationError:   r.cfg.OnDeserializationError,
		OnProcessingError:        r.cfg.OnProcessingError,
		DeadLetterTopic:          r.cfg.DeadLetterTopic,
		Events:                   r.events,
		OnCommitRequest:          r.requestCommit,
		MaxUncommittedStateBytes: r.cfg.MaxUncommittedStateBytes,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &worker{task: task, rt: r, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), ctx: ctx, cancel: cancel}, nil
}

// enqueue hands records to the worker.
func (w *worker) enqueue(recs []*kgo.Record) {
	w.inbox.Lock()
	w.inbox.recs = append(w.inbox.recs, recs)
	w.inbox.Unlock()
	w.buffered.Add(int64(len(recs)))
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) start() {
	if !w.started {
		w.started = true
		go w.run()
	}
}

// stopAndWait stops the worker at a record boundary and waits for it.
// REQUIRES: rt.mu held.
func (w *worker) stopAndWait() {
	w.halt()
	if w.started {
		<-w.done
	}
}

// halt stops the worker without waiting for it: it processes no record
// after the current one, and none at all once it next takes mu. Called at
// the committer's barrier (mu held), it guarantees the task processes
// nothing more. REQUIRES: rt.mu held.
func (w *worker) halt() {
	w.cancel()
	if !w.halted() {
		close(w.stop)
	}
}

// halted reports whether halt was called.
func (w *worker) halted() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func (w *worker) run() {
	defer close(w.done)
	if err := w.task.Restore(w.ctx, changelogReader{w.rt}); err != nil {
		if w.ctx.Err() == nil {
			w.rt.fail(err)
		}
		return
	}
	w.mu.Lock()
	if w.halted() {
		w.mu.Unlock()
		return
	}
	err := w.task.Init()
	if err != nil {
		w.rt.fail(err) // under w.mu: the committer must not commit this task
	}
	w.mu.restored = err == nil
	w.mu.Unlock()
	if err != nil {
		return
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if at, ok := w.task.NextWallClockPunctuation(); ok {
			timer.Reset(time.Until(at))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-w.stop:
			return
		case <-w.wake:
		case <-timer.C:
		}
		for {
			if w.halted() {
				return
			}
			n, err := w.processBatch()
			if err != nil {
				return // processBatch failed the runtime
			}
			w.drained()
			if n == 0 {
				break
			}
		}
	}
}

// processBatch moves the inbox into the task and processes up to batchSize
// records, then due wall-clock punctuators. On error it fails the runtime
// before releasing w.mu, so the committer never commits the half-done
// state of a failed record.
func (w *worker) processBatch() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.halted() {
		return 0, nil // halted at a barrier (see halt)
	}
	w.inbox.Lock()
	inbox := w.inbox.recs
	w.inbox.recs = nil
	w.inbox.Unlock()
	for _, recs := range inbox {
		w.task.Add(recs)
	}
	n := 0
	var err error
	for n < batchSize {
		var ok bool
		ok, err = w.task.ProcessNext()
		if ok {
			n++ // processed, even if a punctuator it made due then failed
		}
		if !ok || err != nil {
			break
		}
	}
	w.buffered.Add(-int64(n))
	w.mu.processed += int64(n)
	w.rt.cfg.Metrics.processed.Add(float64(n))
	if err == nil {
		err = w.task.PunctuateWallClock(time.Now())
	}
	if err != nil {
		w.rt.fail(err)
	}
	return n, err
}
