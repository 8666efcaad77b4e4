package storage

import (
	"slices"
	"testing"

	"github.com/runnel-dev/runnel/state"
)

// TestTasksAndDropTask: Tasks lists every task with data or checkpoints
// (also tasks whose ids are prefixes of others), and DropTask removes
// exactly one closed task, durably.
func TestTasksAndDropTask(t *testing.T) {
	db, fs := openMem(t)
	names := []struct{ task, store string }{{"0_1", "a"}, {"0_1", "ab"}, {"0_10", "a"}, {"1_0", "a"}}
	for _, n := range names {
		ts := db.Task(n.task)
		mustPut(t, ts.Open(n.store, state.Persistent), "k", n.task+"/"+n.store)
		if err := ts.Commit(map[string]int64{n.store: 1}); err != nil {
			t.Fatal(err)
		}
		ts.Close()
	}
	ts := db.Task("2_0") // a checkpoint only
	ts.Open("a", state.Persistent)
	if err := ts.Commit(map[string]int64{"a": 7}); err != nil {
		t.Fatal(err)
	}
	ts.Close()
	got, err := db.Tasks()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"0_1", "0_10", "1_0", "2_0"}; !slices.Equal(got, want) {
		t.Fatalf("Tasks = %v, want %v", got, want)
	}

	ts = db.Task("0_1")
	if err := db.DropTask("0_1"); err == nil {
		t.Error("DropTask of an open task succeeded")
	}
	ts.Close()
	for _, id := range []string{"0_1", "2_0"} {
		if err := db.DropTask(id); err != nil {
			t.Fatal(err)
		}
	}
	db = reopen(t, db, fs)
	want := []string{
		ckptKey("1_0", "a") + "=" + ckptVal(1), ckptKey("0_10", "a") + "=" + ckptVal(1), // keys sort by length-prefixed id
		dataKey("1_0", "a", "k") + `="1_0/a"`, dataKey("0_10", "a", "k") + `="0_10/a"`,
	}
	if got := dump(t, db); !slices.Equal(got, want) {
		t.Errorf("after DropTask(0_1), DropTask(2_0):\n got %v\nwant %v", got, want)
	}
	if got, _ := db.Tasks(); !slices.Equal(got, []string{"0_10", "1_0"}) {
		t.Errorf("Tasks after the drops = %v", got)
	}
}
