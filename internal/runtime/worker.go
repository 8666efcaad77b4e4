package runtime

import (
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

	// mu is held while the task processes records.
	mu sync.Mutex

	inboxMu  sync.Mutex
	inbox    [][]*kgo.Record // guarded by inboxMu
	buffered atomic.Int64    // records handed over and not yet processed

	// pauseMu orders pausing (by the poll loop) and resuming (by the
	// worker) of the task's partitions, so a resume never overtakes the
	// pause it undoes.
	pauseMu  sync.Mutex
	paused   map[string][]int32 // the paused partitions, nil when fetching; guarded by pauseMu
	resumeAt int64              // resume once buffered is down to this; guarded by pauseMu

	wake    chan struct{} // cap 1
	stop    chan struct{}
	done    chan struct{}
	started bool
}

func (r *Runtime) newWorker(id topology.TaskID) (*worker, error) {
	task, err := NewTask(TaskConfig{
		AppID: r.cfg.AppID, ID: id, Topology: r.cfg.Topology, Producer: r.prod, Logger: r.log,
		OnDeserializationError: r.cfg.OnDeserializationError,
		OnProcessingError:      r.cfg.OnProcessingError,
		DeadLetterTopic:        r.cfg.DeadLetterTopic,
		OnSkip:                 func(reason string) { r.cfg.Metrics.skipped.WithLabelValues(reason).Inc() },
		OnCommitRequest:        r.requestCommit,
	})
	if err != nil {
		return nil, err
	}
	return &worker{task: task, rt: r, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// enqueue hands records to the worker and returns how many it now holds.
func (w *worker) enqueue(recs []*kgo.Record) int {
	w.inboxMu.Lock()
	w.inbox = append(w.inbox, recs)
	w.inboxMu.Unlock()
	n := w.buffered.Add(int64(len(recs)))
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return int(n)
}

// pause stops fetching the task's partitions until the worker has worked
// its buffer down to resumeAt. REQUIRES: rt.mu held (for w.partitions).
func (w *worker) pause(resumeAt int) {
	w.pauseMu.Lock()
	defer w.pauseMu.Unlock()
	// The worker checks for a resume only after processing a batch: if it
	// already worked the buffer down since the caller looked, pausing
	// now would never be undone.
	if w.paused != nil || w.buffered.Load() <= int64(resumeAt) {
		return
	}
	w.paused = map[string][]int32{}
	for _, tp := range w.partitions {
		w.paused[tp.topic] = append(w.paused[tp.topic], tp.partition)
	}
	w.resumeAt = int64(resumeAt)
	w.rt.cl.PauseFetchPartitions(w.paused)
}

// resumeIfDrained resumes the task's paused partitions once its buffer is
// down to resumeAt. The worker calls it after every batch, so fetching
// resumes as soon as there is room, not at the poll loop's next turn (a
// poll with every partition paused waits out its whole timeout).
func (w *worker) resumeIfDrained() {
	w.pauseMu.Lock()
	defer w.pauseMu.Unlock()
	if w.paused != nil && w.buffered.Load() <= w.resumeAt {
		w.rt.cl.ResumeFetchPartitions(w.paused)
		w.paused = nil
	}
}

func (w *worker) start() {
	if !w.started {
		w.started = true
		go w.run()
	}
}

// stopAndWait stops the worker at a record boundary and waits for it.
func (w *worker) stopAndWait() {
	if !w.started {
		return
	}
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *worker) run() {
	defer close(w.done)
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
			select {
			case <-w.stop:
				return
			default:
			}
			n, err := w.processBatch()
			if err != nil {
				w.rt.fail(err)
				return
			}
			w.resumeIfDrained()
			if n == 0 {
				break
			}
		}
	}
}

// processBatch moves the inbox into the task and processes up to batchSize
// records, then due wall-clock punctuators.
func (w *worker) processBatch() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inboxMu.Lock()
	inbox := w.inbox
	w.inbox = nil
	w.inboxMu.Unlock()
	for _, recs := range inbox {
		w.task.Add(recs)
	}
	n := 0
	var err error
	for n < batchSize {
		var ok bool
		if ok, err = w.task.ProcessNext(); !ok {
			break
		}
		n++
	}
	w.buffered.Add(-int64(n))
	w.rt.cfg.Metrics.processed.Add(float64(n))
	if err == nil {
		err = w.task.PunctuateWallClock(time.Now())
	}
	return n, err
}
