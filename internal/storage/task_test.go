package storage

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/runnel-dev/runnel/state"
)

func TestBatchIsolation(t *testing.T) {
	db, fs := openMem(t)
	ts := db.Task("0_1")
	s := ts.Open("s", state.Persistent)
	other := db.Task("0_2").Open("s", state.Persistent)

	mustPut(t, s, "a", "1")
	mustPut(t, s, "b", "2")
	mustDelete(t, s, "b")
	if v := mustGet(t, s, "a"); string(v) != "1" {
		t.Errorf("pending a=%q, want 1", v)
	}
	if got := scanAll(t, s, nil, nil, false); !slices.Equal(got, []string{"a=1"}) {
		t.Errorf("pending scan %v", got)
	}
	if v := rawGet(t, db, "0_1", "s", "a"); v != nil {
		t.Errorf("uncommitted a=%q visible in the database", v)
	}
	if v := mustGet(t, other, "a"); v != nil {
		t.Errorf("task 0_2 sees task 0_1's a=%q", v)
	}
	if ts.PendingBytes() == 0 {
		t.Error("PendingBytes 0 with pending writes")
	}

	// Closing without a commit discards the pending writes.
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	ts = db.Task("0_1")
	s = ts.Open("s", state.Persistent)
	if v := mustGet(t, s, "a"); v != nil {
		t.Errorf("a=%q after closing without a commit", v)
	}
	if n := ts.PendingBytes(); n != 0 {
		t.Errorf("PendingBytes %d of a reopened task", n)
	}

	// Values aliasing the caller's memory are copied.
	buf := []byte("2")
	if err := s.Put([]byte("a"), buf); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'X'
	mustPut(t, s, "c", "3")
	if err := ts.Commit(map[string]int64{"s": 42}); err != nil {
		t.Fatal(err)
	}
	if n := ts.PendingBytes(); n != 0 {
		t.Errorf("PendingBytes %d after Commit", n)
	}
	want := []string{
		ckptKey("0_1", "s") + "=" + ckptVal(42),
		dataKey("0_1", "s", "a") + `="2"`,
		dataKey("0_1", "s", "c") + `="3"`,
	}
	if got := dump(t, db); !slices.Equal(got, want) {
		t.Errorf("database after Commit:\n got %v\nwant %v", got, want)
	}

	// Uncommitted writes die with the task; the committed state survives.
	mustPut(t, s, "a", "uncommitted")
	mustPut(t, s, "d", "uncommitted")
	ts.Close()
	if _, err := s.Get([]byte("a")); !errors.Is(err, state.ErrClosed) {
		t.Errorf("Get after Close: %v, want state.ErrClosed", err)
	}
	db = reopen(t, db, fs)
	if got := dump(t, db); !slices.Equal(got, want) {
		t.Errorf("database after reopening:\n got %v\nwant %v", got, want)
	}
	ts = db.Task("0_1")
	s = ts.Open("s", state.Persistent)
	if off, ok, err := ts.Checkpoint("s"); off != 42 || !ok || err != nil {
		t.Errorf("Checkpoint = %d, %v, %v; want 42", off, ok, err)
	}
	if got := scanAll(t, s, nil, nil, false); !slices.Equal(got, []string{"a=2", "c=3"}) {
		t.Errorf("after reopening: %v", got)
	}
}

func TestCommitIsSynced(t *testing.T) {
	fs := vfs.NewCrashableMem()
	db := openOn(t, fs, "db")
	ts := db.Task("0_0")
	s := ts.Open("s", state.Persistent)
	mustPut(t, s, "a", "1")
	if err := ts.Commit(map[string]int64{"s": 5}); err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{}) // only synced data
	db2 := openOn(t, crashed, "db")
	want := []string{ckptKey("0_0", "s") + "=" + ckptVal(5), dataKey("0_0", "s", "a") + `="1"`}
	if got := dump(t, db2); !slices.Equal(got, want) {
		t.Errorf("after a crash:\n got %v\nwant %v", got, want)
	}
}

func TestCommitCheckpointOnly(t *testing.T) {
	db, _ := openMem(t)
	ts := db.Task("0_0")
	ts.Open("p", state.Persistent)
	ts.Open("m", state.InMemory)
	if err := ts.Commit(nil); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, db); len(got) != 0 {
		t.Errorf("empty Commit wrote %v", got)
	}
	if err := ts.Commit(map[string]int64{"p": 3, "m": 9}); err != nil {
		t.Fatal(err)
	}
	if off, ok, _ := ts.Checkpoint("p"); off != 3 || !ok {
		t.Errorf("checkpoint of p = %d, %v", off, ok)
	}
	if _, ok, _ := ts.Checkpoint("m"); ok {
		t.Error("in-memory store has a checkpoint")
	}
	if err := ts.Commit(map[string]int64{"nope": 1}); err == nil {
		t.Error("Commit with a checkpoint of an unknown store succeeded")
	}
}

func TestWipe(t *testing.T) {
	db, fs := openMem(t)
	ts := db.Task("0_0")
	s1 := ts.Open("s1", state.Persistent)
	s2 := ts.Open("s2", state.Persistent)
	mustPut(t, s1, "a", "1")
	mustPut(t, s2, "a", "1")
	if err := ts.Commit(map[string]int64{"s1": 10, "s2": 20}); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s1, "b", "pending")
	mustPut(t, s2, "b", "pending")

	if err := ts.Wipe("s1"); err != nil {
		t.Fatal(err)
	}
	if got := scanAll(t, s1, nil, nil, false); len(got) != 0 {
		t.Errorf("s1 after Wipe: %v", got)
	}
	if _, ok, err := ts.Checkpoint("s1"); ok || err != nil {
		t.Errorf("s1 checkpoint after Wipe: ok=%v err=%v", ok, err)
	}
	if got := scanAll(t, s2, nil, nil, false); !slices.Equal(got, []string{"a=1", "b=pending"}) {
		t.Errorf("s2 after wiping s1: %v", got)
	}
	// Wipe is durable at once.
	if v := rawGet(t, db, "0_0", "s1", "a"); v != nil {
		t.Errorf("wiped a=%q still in the database", v)
	}

	// Restoring after a Wipe is not undone by the pending batch's commit.
	if err := ts.Restore("s1", []Write{{Key: []byte("r"), Value: []byte("restored")}}, 11); err != nil {
		t.Fatal(err)
	}
	if err := ts.Commit(map[string]int64{"s2": 21}); err != nil {
		t.Fatal(err)
	}
	ts.Close()
	db = reopen(t, db, fs)
	want := []string{
		ckptKey("0_0", "s1") + "=" + ckptVal(11),
		ckptKey("0_0", "s2") + "=" + ckptVal(21),
		dataKey("0_0", "s1", "r") + `="restored"`,
		dataKey("0_0", "s2", "a") + `="1"`,
		dataKey("0_0", "s2", "b") + `="pending"`,
	}
	if got := dump(t, db); !slices.Equal(got, want) {
		t.Errorf("after Wipe, Restore, Commit:\n got %v\nwant %v", got, want)
	}
}

func TestRestore(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine.String(), func(t *testing.T) {
			db, fs := openMem(t)
			ts := db.Task("0_3")
			s := ts.Open("s", engine)
			writes := []Write{
				{Key: []byte("a"), Value: []byte("1")},
				{Key: []byte("b"), Value: []byte("2")},
				{Key: []byte("a"), Value: nil},
				{Key: []byte("c"), Value: []byte{}},
			}
			if err := ts.Restore("s", writes, 100); err != nil {
				t.Fatal(err)
			}
			if got := scanAll(t, s, nil, nil, false); !slices.Equal(got, []string{"b=2", "c="}) {
				t.Errorf("restored: %v", got)
			}
			if v := mustGet(t, s, "c"); v == nil || len(v) != 0 {
				t.Errorf("empty value restored as %#v", v)
			}
			off, ok, err := ts.Checkpoint("s")
			if engine == state.InMemory {
				if ok || err != nil {
					t.Errorf("in-memory checkpoint: ok=%v err=%v", ok, err)
				}
				return
			}
			if off != 100 || !ok || err != nil {
				t.Errorf("Checkpoint = %d, %v, %v; want 100", off, ok, err)
			}
			if err := ts.Restore("s", []Write{{Key: []byte("d"), Value: []byte("4")}}, 101); err != nil {
				t.Fatal(err)
			}
			ts.Close()
			db = reopen(t, db, fs)
			ts = db.Task("0_3")
			s = ts.Open("s", engine)
			if got := scanAll(t, s, nil, nil, false); !slices.Equal(got, []string{"b=2", "c=", "d=4"}) {
				t.Errorf("restored after reopening: %v", got)
			}
			if off, _, _ := ts.Checkpoint("s"); off != 101 {
				t.Errorf("checkpoint after reopening %d, want 101", off)
			}
		})
	}
}

func TestBadCheckpoint(t *testing.T) {
	db, _ := openMem(t)
	ts := db.Task("0_0")
	ts.Open("s", state.Persistent)
	if err := db.pdb.Set(storePrefix(keyspaceCheckpt, "0_0", "s"), []byte("garbage"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ts.Checkpoint("s"); !errors.Is(err, ErrBadCheckpoint) {
		t.Fatalf("Checkpoint of a malformed value: %v, want ErrBadCheckpoint", err)
	}
	if err := ts.Wipe("s"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := ts.Checkpoint("s"); ok || err != nil {
		t.Errorf("after Wipe: ok=%v err=%v", ok, err)
	}
}

func TestInMemoryStoreDiesWithTask(t *testing.T) {
	db, _ := openMem(t)
	ts := db.Task("0_0")
	s := ts.Open("m", state.InMemory)
	mustPut(t, s, "a", "1")
	if err := ts.Commit(map[string]int64{"m": 1}); err != nil {
		t.Fatal(err)
	}
	ts.Close()
	if _, err := s.Get([]byte("a")); !errors.Is(err, state.ErrClosed) {
		t.Errorf("Get after Close: %v, want state.ErrClosed", err)
	}
	ts = db.Task("0_0")
	if v := mustGet(t, ts.Open("m", state.InMemory), "a"); v != nil {
		t.Errorf("in-memory a=%q survived its task", v)
	}
	if got := dump(t, db); len(got) != 0 {
		t.Errorf("in-memory store wrote to the database: %v", got)
	}
}

// TestCommitFailure injects write errors into Pebble's file system: Commit
// fails, the DB fails, and reopening shows the last committed state.
func TestCommitFailure(t *testing.T) {
	mem := vfs.NewMem()
	var failing atomic.Bool
	fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failing.Load() && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return errorfs.ErrInjected
		}
		return nil
	}))
	db := openOn(t, fs, "db")
	ts := db.Task("0_0")
	s := ts.Open("s", state.Persistent)
	mustPut(t, s, "a", "1")
	if err := ts.Commit(map[string]int64{"s": 1}); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "a", "2")
	mustPut(t, s, "b", "2")

	failing.Store(true)
	err := ts.Commit(map[string]int64{"s": 2})
	if !errors.Is(err, ErrFailed) || !errors.Is(db.Err(), ErrFailed) {
		t.Fatalf("Commit with failing writes: %v (DB: %v), want ErrFailed", err, db.Err())
	}
	if _, err := s.Get([]byte("a")); !errors.Is(err, ErrFailed) {
		t.Errorf("Get after the failure: %v, want ErrFailed", err)
	}
	if err := ts.Commit(nil); !errors.Is(err, ErrFailed) {
		t.Errorf("Commit after the failure: %v, want ErrFailed", err)
	}
	ts.Close()
	_ = db.Close() // reports the injected error
	failing.Store(false)

	db = openOn(t, mem, "db")
	want := []string{ckptKey("0_0", "s") + "=" + ckptVal(1), dataKey("0_0", "s", "a") + `="1"`}
	if got := dump(t, db); !slices.Equal(got, want) {
		t.Errorf("after the failed Commit:\n got %v\nwant %v", got, want)
	}
}
