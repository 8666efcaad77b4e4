package storage

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/runnel-dev/runnel/internal/keyspace"
	"github.com/runnel-dev/runnel/state"
)

// Tasks returns the ids of the tasks that have data or checkpoints in the
// database, sorted, whether they are open or not. The runtime uses it to
// find the state of tasks it no longer owns.
func (db *DB) Tasks() ([]string, error) {
	if err := db.Err(); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var ids []string
	for _, ks := range []byte{keyspaceCheckpt, keyspaceData} {
		it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{ks}, UpperBound: []byte{ks + 1}})
		if err != nil {
			return nil, fmt.Errorf("state: listing tasks: %w", err)
		}
		for valid := it.First(); valid; {
			id, ok := taskOf(it.Key())
			if !ok {
				it.Close()
				return nil, fmt.Errorf("state: listing tasks: malformed key %q", it.Key())
			}
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
			// Skip the rest of the task's keys.
			valid = it.SeekGE(keyspace.PrefixSuccessor(taskPrefix(ks, id)))
		}
		if err := it.Close(); err != nil {
			return nil, fmt.Errorf("state: listing tasks: %w", err)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// taskOf returns the task id of a data or checkpoint key.
func taskOf(key []byte) (string, bool) {
	if len(key) < 2 {
		return "", false
	}
	n, w := binary.Uvarint(key[1:])
	if w <= 0 || uint64(len(key)-1-w) < n {
		return "", false
	}
	return string(key[1+w : 1+w+int(n)]), true
}

// DropTask deletes all state of task id, data and checkpoints, durably: how
// an instance cleans up a task it no longer owns. The task must not be
// open, and the caller must not open it (DB.Task) while DropTask runs.
func (db *DB) DropTask(id string) error {
	db.mu.Lock()
	if _, ok := db.mu.tasks[id]; ok {
		db.mu.Unlock()
		return fmt.Errorf("state: drop task %s: task is open", id)
	}
	closed := db.mu.closed
	db.mu.Unlock()
	if closed {
		return fmt.Errorf("state: drop task %s: %w", id, state.ErrClosed)
	}
	b := db.pdb.NewBatch()
	defer b.Close()
	for _, ks := range []byte{keyspaceData, keyspaceCheckpt} {
		p := taskPrefix(ks, id)
		if err := b.DeleteRange(p, keyspace.PrefixSuccessor(p), nil); err != nil {
			return fmt.Errorf("state: drop task %s: %w", id, err)
		}
	}
	if err := db.apply(b, pebble.Sync); err != nil {
		return fmt.Errorf("state: drop task %s: %w", id, err)
	}
	return nil
}
