package runtime

import (
	"fmt"
	"time"

	"github.com/runnel-dev/runnel/topology"
)

// punctuation is one scheduled punctuator of a task.
type punctuation struct {
	node      string
	typ       topology.PunctuationType
	interval  int64 // ms
	next      int64 // ms on the punctuation's clock
	fn        topology.Punctuator
	cancelled bool
}

// Cancel implements topology.Cancellable.
func (p *punctuation) Cancel() { p.cancelled = true }

// Schedule implements graph.TaskContext. As in Kafka Streams, stream-time
// punctuation is aligned to 0 (so it fires with the first record, then at
// the first record of each later interval of the grid 0 + k*interval), and
// wall-clock punctuation is first due one interval from now.
func (t *Task) Schedule(node string, interval time.Duration, typ topology.PunctuationType, fn topology.Punctuator) (topology.Cancellable, error) {
	ms := interval.Milliseconds()
	if ms < 1 {
		return nil, fmt.Errorf("task %s: node %q: punctuation interval %v is below 1ms", t.cfg.ID, node, interval)
	}
	var next int64
	if typ == topology.WallClockTime {
		next = t.cfg.Clock().UnixMilli() + ms
	}
	p := &punctuation{node: node, typ: typ, interval: ms, next: next, fn: fn}
	t.puncts = append(t.puncts, p)
	return p, nil
}

// punctuate fires every due punctuator of the given type once with now, and
// moves its next time to the first grid point after now (missed intervals
// are skipped, not replayed). Errors go to the processing error handler.
func (t *Task) punctuate(typ topology.PunctuationType, now int64) error {
	for i := 0; i < len(t.puncts); i++ { // punctuators may schedule more
		p := t.puncts[i]
		if p.cancelled || p.typ != typ || now < p.next {
			continue
		}
		p.next += ((now-p.next)/p.interval + 1) * p.interval
		t.recordTime = now
		if err := p.fn(now); err != nil {
			if err := t.handleError(err, "punctuation"); err != nil {
				return err
			}
		}
	}
	t.puncts = deleteCancelled(t.puncts)
	return nil
}

func deleteCancelled(ps []*punctuation) []*punctuation {
	out := ps[:0]
	for _, p := range ps {
		if !p.cancelled {
			out = append(out, p)
		}
	}
	clear(ps[len(out):])
	return out
}
