package runtime

import (
	"context"
	"time"
)

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
	for _, w := range r.mu.workers {
		limit := int64(r.cfg.MaxBufferedPerPartition * len(w.partitions))
		w.flow.Lock()
		if !w.flow.full && w.buffered.Load() > limit {
			w.flow.full, w.flow.roomAt, w.flow.fullSince = true, limit/2, time.Now()
		}
		full = full || (w.flow.full && w.flow.paused == nil)
		w.flow.Unlock()
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
	for _, w := range r.mu.workers {
		w.flow.Lock()
		if w.flow.full && w.flow.paused == nil && now.Sub(w.flow.fullSince) >= pauseAfter {
			w.flow.paused = map[string][]int32{}
			for _, tp := range w.partitions {
				w.flow.paused[tp.topic] = append(w.flow.paused[tp.topic], tp.partition)
			}
			// Under flow, so the worker's resume (drained) cannot run
			// between marking and pausing and be undone by this pause.
			r.cl.PauseFetchPartitions(w.flow.paused)
		}
		w.flow.Unlock()
	}
}

// drained is called after every batch: once a full task is down to roomAt
// it resumes the task's paused partitions, if any, and wakes the poll loop
// if it waits for room. The worker lowers buffered before locking flow,
// so either Runtime.anyFull sees the lowered count and does not mark the
// task full, or it marks it first and drained sees the mark.
func (w *worker) drained() {
	w.flow.Lock()
	defer w.flow.Unlock()
	if !w.flow.full || w.buffered.Load() > w.flow.roomAt {
		return
	}
	w.flow.full = false
	if w.flow.paused != nil {
		w.rt.cl.ResumeFetchPartitions(w.flow.paused)
		w.flow.paused = nil
	}
	select {
	case w.rt.room <- struct{}{}:
	default:
	}
}
