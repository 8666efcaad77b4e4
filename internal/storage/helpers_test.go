package storage

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/runnel-dev/runnel/state"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(lockHolderEnv) != "" {
		holdLock() // the child process of TestOpenLockedByOtherProcess
		return
	}
	goleak.VerifyTestMain(m)
}

// openMem opens a DB on a fresh in-memory file system, closed at cleanup.
func openMem(t testing.TB) (*DB, vfs.FS) {
	t.Helper()
	fs := vfs.NewMem()
	return openOn(t, fs, "db"), fs
}

// openOn opens the DB in dir on fs, closed at cleanup (its tasks first).
func openOn(t testing.TB, fs vfs.FS, dir string) *DB {
	t.Helper()
	db, err := Open(dir, Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeDB(t, db) })
	return db
}

// closeDB closes db's open tasks and db, unless it is closed already.
func closeDB(t testing.TB, db *DB) {
	t.Helper()
	db.mu.Lock()
	closed := db.mu.closed
	var open []*TaskState
	for _, ts := range db.mu.tasks {
		open = append(open, ts)
	}
	db.mu.Unlock()
	if closed {
		return
	}
	for _, ts := range open {
		ts.Close()
	}
	if err := db.Close(); err != nil && db.Err() == nil {
		t.Errorf("closing the DB: %v", err)
	}
}

// reopen closes db (and its tasks) and opens the same directory again.
func reopen(t testing.TB, db *DB, fs vfs.FS) *DB {
	t.Helper()
	closeDB(t, db)
	return openOn(t, fs, db.dir)
}

// dump returns every key and value in the Pebble database (committed
// state), as "key=value" lines with keys quoted.
func dump(t testing.TB, db *DB) []string {
	t.Helper()
	it, err := db.pdb.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, fmt.Sprintf("%q=%q", it.Key(), it.Value()))
	}
	return out
}

// dataKey and ckptKey return raw database keys, for dump comparisons.
func dataKey(task, store, key string) string {
	return fmt.Sprintf("%q", append(storePrefix(keyspaceData, task, store), key...))
}

func ckptKey(task, store string) string {
	return fmt.Sprintf("%q", storePrefix(keyspaceCheckpt, task, store))
}

func ckptVal(off int64) string { return fmt.Sprintf("%q", encodeCheckpoint(off)) }

// scanAll returns the entries of s in [lower, upper) as "key=value".
func scanAll(t testing.TB, s state.BytesStore, lower, upper []byte, reverse bool) []string {
	t.Helper()
	var out []string
	err := s.Scan(lower, upper, reverse, func(k, v []byte) bool {
		out = append(out, string(k)+"="+string(v))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustGet(t testing.TB, s state.BytesStore, key string) []byte {
	t.Helper()
	v, err := s.Get([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustPut(t testing.TB, s state.BytesStore, key, value string) {
	t.Helper()
	if err := s.Put([]byte(key), []byte(value)); err != nil {
		t.Fatal(err)
	}
}

func mustDelete(t testing.TB, s state.BytesStore, key string) {
	t.Helper()
	if err := s.Delete([]byte(key)); err != nil {
		t.Fatal(err)
	}
}

// rawGet reads key of the committed database, bypassing every batch.
func rawGet(t testing.TB, db *DB, task, store, key string) []byte {
	t.Helper()
	v, c, err := db.pdb.Get(append(storePrefix(keyspaceData, task, store), key...))
	if err == pebble.ErrNotFound {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return bytes.Clone(v)
}

var engines = []state.Engine{state.Persistent, state.InMemory}
