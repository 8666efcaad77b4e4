package runtime

import (
	"fmt"
)

// stateFailed returns the error of a state database that failed (a write
// did not persist, or a read found its files damaged), or nil. Such a
// failure is the task's, not the record's: it fails the task whatever the
// processing error handler would say, since continuing would process
// records over state that is missing or not durable.
func (t *Task) stateFailed() error {
	if t.state == nil || t.cfg.State.Err() == nil {
		return nil
	}
	if err := t.storeErr(); err != nil {
		return err // names the store, the operation and the key
	}
	return fmt.Errorf("task %s: %w", t.cfg.ID, t.cfg.State.Err())
}
